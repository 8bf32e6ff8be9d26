"""OCR engines on scanned pages: character accuracy against the known text, and seconds per page.

    python bench/ocr.py                     # every engine importable here
    python bench/ocr.py --engines tesseract --dpi 300 200

Pages are made here: known English prose drawn with Pillow as a scan would be (a realistic
resolution, grey paper, a slight skew, noise, JPEG), each placed as the only content of a PDF page
with fpdf2 (no text layer), then rendered back with pypdfium2 at `--dpi` and read by each engine:
"tesseract" (Debian's tesseract-ocr through pytesseract) and "rapidocr" (rapidocr-onnxruntime,
models inside its wheel). Accuracy is 1 - character error rate (Levenshtein distance over the known
text's length), whitespace collapsed; "no-space" accuracy ignores spaces (an engine that drops the
spaces between words reads the letters right but glues words together, which retrieval cannot use).
Seconds are per page (render + recognition), after a warm-up page, as wall time and as CPU time
(this process's threads plus the tesseract child's): the machine is shared, so wall time moves with
the load and CPU seconds are the figure to compare.

Standalone on purpose (imports nothing from `rag`): it runs in a scratch venv holding an engine
the project does not install.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import resource
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TEXTS = [
    "The Harbour Authority handled 4,217 cargo ships in 2023, up from 3,980 the year before. The "
    "busiest month was August, when the new container crane entered service on the eastern quay. "
    "Dredging of the main channel cost 12.4 million euros and was finished in November, two weeks "
    "ahead of schedule. The harbour master, Ingrid Solberg, reported that pilots boarded vessels on "
    "every day of the year except Christmas Day, when fog closed the port for eleven hours.",
    "Minutes of the parish council meeting held on 14 March. Present: the chair, Mr Okafor, and six "
    "councillors. The treasurer reported a balance of 18,250 pounds, of which 7,900 pounds is set "
    "aside for repairs to the village hall roof. The council agreed to plant 120 oak saplings along "
    "the bridleway in the autumn. A resident asked why the footpath near Mill Lane had been closed; "
    "the clerk explained that the bridge failed its inspection and will be replaced by June.",
    "Laboratory notebook, page 37. Sample B-14 was heated to 162 degrees Celsius for 45 minutes and "
    "then cooled slowly in the furnace. Its mass fell from 2.316 grams to 2.289 grams. Under the "
    "microscope the crystals were needle shaped, unlike those of sample B-12, which were cubic. "
    "Dr. Moreau suggests repeating the run with a slower ramp of 2 degrees per minute; the next "
    "furnace slot is on Thursday morning.",
]
FONTS = {
    "serif": "/usr/share/fonts/truetype/liberation/LiberationSerif-Regular.ttf",
    "sans": "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
}


@dataclass(frozen=True)
class Scan:
    """How a page is 'scanned': its resolution, skew (degrees), noise and JPEG quality (0: PNG)."""

    name: str
    dpi: int
    skew: float
    noise: int
    jpeg: int
    font: str = "serif"
    points: float = 11.0


SCANS = [
    Scan("clean-300", 300, 0.0, 0, 0),
    Scan("office-300", 300, 0.7, 18, 70),
    Scan("office-200-sans", 200, -0.9, 18, 60, font="sans", points=10.0),
    Scan("poor-150", 150, 1.2, 28, 50),
    Scan("small-200", 200, 0.5, 30, 50, points=8.0),
    Scan("fax-100", 100, 1.5, 40, 40, font="sans", points=9.0),
    Scan("footnote-300", 300, 0.3, 15, 70, points=6.5),
]


def scanned_page(text: str, scan: Scan) -> Any:
    """A grey A4 page image of `text` as `scan` would produce it (Pillow)."""
    from PIL import Image, ImageDraw, ImageFilter, ImageFont

    width, height = int(8.27 * scan.dpi), int(11.69 * scan.dpi)
    font_path = FONTS.get(scan.font)
    size = round(scan.points * scan.dpi / 72)
    font: Any = (
        ImageFont.truetype(font_path, size)
        if font_path and Path(font_path).exists()
        else ImageFont.load_default(size=size)
    )
    image = Image.new("L", (width, height), 235)
    draw = ImageDraw.Draw(image)
    margin, y = int(width * 0.12), int(height * 0.1)
    for line in wrap(text, lambda s: draw.textlength(s, font=font), width - 2 * margin):
        draw.text((margin, y), line, fill=25, font=font)
        y += int(size * 1.45)
    if scan.skew:
        image = image.rotate(scan.skew, resample=Image.Resampling.BICUBIC, fillcolor=235)
    if scan.noise:
        rng = random.Random(scan.name)
        noise = Image.frombytes("L", image.size, rng.randbytes(width * height))
        image = Image.blend(image, noise.filter(ImageFilter.GaussianBlur(0.6)), scan.noise / 255)
    return image


def wrap(text: str, measure: Callable[[str], float], width: float) -> list[str]:
    lines: list[str] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}".strip()
        if current and measure(candidate) > width:
            lines.append(current)
            current = word
        else:
            current = candidate
    return lines + ([current] if current else [])


def image_pdf(image: Any, scan: Scan) -> bytes:
    """A one-page PDF whose only content is `image` (no text layer)."""
    from fpdf import FPDF

    buffer = io.BytesIO()
    if scan.jpeg:
        image.save(buffer, format="JPEG", quality=scan.jpeg)
    else:
        image.save(buffer, format="PNG")
    buffer.seek(0)
    pdf = FPDF()
    pdf.add_page()
    pdf.image(buffer, x=0, y=0, w=210, h=297)
    return bytes(pdf.output())


def render(data: bytes, dpi: int) -> Any:
    import pypdfium2

    document = pypdfium2.PdfDocument(data)
    try:
        return document[0].render(scale=dpi / 72, grayscale=True).to_pil()
    finally:
        document.close()


def tesseract_engine() -> Callable[[Any], str]:
    import pytesseract

    pytesseract.get_tesseract_version()  # raises when the binary is missing
    return lambda image: pytesseract.image_to_string(image, lang="eng")


def rapidocr_engine() -> Callable[[Any], str]:
    import numpy as np
    from rapidocr_onnxruntime import RapidOCR

    engine = RapidOCR()

    def read(image: Any) -> str:
        result, _ = engine(np.asarray(image.convert("RGB")))
        return "\n".join(text for _, text, _ in result or [])

    return read


ENGINES = {"tesseract": tesseract_engine, "rapidocr": rapidocr_engine}


def normalise(text: str, *, spaces: bool = True) -> str:
    return " ".join(text.split()) if spaces else "".join(text.split())


def levenshtein(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i]
        for j, cb in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def accuracy(truth: str, read: str, *, spaces: bool = True) -> float:
    t, r = normalise(truth, spaces=spaces), normalise(read, spaces=spaces)
    return max(0.0, 1 - levenshtein(t, r) / len(t))


def cpu_seconds() -> float:
    """CPU time of this process (all its threads) and of its finished children (tesseract)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def measure(name: str, dpis: Sequence[int], scans: Sequence[Scan]) -> list[dict[str, Any]]:
    started = time.perf_counter()
    try:
        read = ENGINES[name]()
    except Exception as exc:  # not installed here: say so, measure the others
        print(f"{name}: not available ({type(exc).__name__}: {exc})")
        return []
    load_s = time.perf_counter() - started
    pages = [(scan, text, image_pdf(scanned_page(text, scan), scan)) for scan in scans for text in TEXTS]
    read(render(pages[0][2], dpis[0]))  # warm-up
    rows = []
    for dpi in dpis:
        for scan in scans:
            accs, nospace, seconds, cpu = [], [], [], []
            for page_scan, text, data in pages:
                if page_scan != scan:
                    continue
                t0, c0 = time.perf_counter(), cpu_seconds()
                out = read(render(data, dpi))
                seconds.append(time.perf_counter() - t0)
                cpu.append(cpu_seconds() - c0)
                accs.append(accuracy(text, out))
                nospace.append(accuracy(text, out, spaces=False))
            rows.append(
                {
                    "engine": name,
                    "render_dpi": dpi,
                    "scan": scan.name,
                    "char_accuracy": round(sum(accs) / len(accs), 4),
                    "no_space_accuracy": round(sum(nospace) / len(nospace), 4),
                    "s_per_page": round(sum(seconds) / len(seconds), 2),
                    "cpu_s_per_page": round(sum(cpu) / len(cpu), 2),
                    "load_s": round(load_s, 2),
                }
            )
            print(json.dumps(rows[-1]))
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engines", nargs="+", default=list(ENGINES), choices=list(ENGINES))
    parser.add_argument("--dpi", nargs="+", type=int, default=[300], help="render resolution(s) for recognition")
    parser.add_argument("--scans", nargs="+", default=[s.name for s in SCANS], choices=[s.name for s in SCANS])
    parser.add_argument("--out", type=Path, help="write the rows here as JSON")
    args = parser.parse_args(argv)
    scans = [s for s in SCANS if s.name in args.scans]
    rows = [row for name in args.engines for row in measure(name, args.dpi, scans)]
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
