// The document viewer (js_on_load of its gr.HTML): scroll the cited span into view on each opening.
watch('value', () => {
  const mark = element.querySelector('#rag-cited');
  if (mark) mark.scrollIntoView({block: 'center', inline: 'nearest'});
});
