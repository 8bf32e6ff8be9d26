// The Sources panel (js_on_load of its gr.HTML). Clicks on a source card, or on an [n] marker in the
// chat, open the document in the viewer. Markers are links to "#cite-<turn>-<n>"; one capturing
// listener on the page turns them into this component's "cite" event (the link itself never navigates).
const openCitation = (data) => trigger('cite', data);
element.addEventListener('click', (event) => {
  const card = event.target.closest('.rag-card');
  if (!card) return;
  const data = {turn: Number(card.dataset.turn)};
  if (card.dataset.n !== undefined) data.n = Number(card.dataset.n);
  if (card.dataset.hit !== undefined) data.hit = Number(card.dataset.hit);
  openCitation(data);
});
window.__ragOpenCitation = openCitation;
// Scroll each card's passage so its highlighted sentence shows.
watch('value', () => {
  for (const box of element.querySelectorAll('.rag-passage')) {
    const mark = box.querySelector('mark');
    if (mark) box.scrollTop = Math.max(0, mark.offsetTop - 24);
  }
});
if (!window.__ragMarkerListener) {
  window.__ragMarkerListener = true;
  document.addEventListener('click', (event) => {
    const link = event.target.closest ? event.target.closest('a[href^="#cite-"]') : null;
    if (!link) return;
    const match = /^#cite-(\d+)-(\d+)$/.exec(link.getAttribute('href') || '');
    if (!match) return;
    event.preventDefault();
    event.stopPropagation();
    window.__ragOpenCitation({turn: Number(match[1]), n: Number(match[2])});
  }, true);
}
