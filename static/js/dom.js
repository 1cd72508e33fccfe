// DOM helpers. User text reaches the page only as text nodes: el() appends
// strings with Node.append, which never parses HTML.

export const $ = (sel, root = document) => root.querySelector(sel);
export const byTestId = (id, root = document) => root.querySelector(`[data-testid="${id}"]`);

/**
 * el builds an element. Children that are strings become text nodes
 * (Node.append never parses HTML), so user text is safe to pass here.
 * props: class, text (textContent), dataset, on<event>, or any attribute
 * but `style`: the page runs under a CSP without 'unsafe-inline', which
 * refuses style attributes (CSSOM writes such as el.style.setProperty are
 * allowed and are the way to style from here).
 */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value == null || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'text') node.textContent = value;
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else if (key === 'style') throw new Error('el: no style attributes (CSP); use a class or el.style');
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children) if (child != null) node.append(child);
  return node;
}

/** countText is a count as a badge shows it: 99+ past 99. */
export const countText = (n) => (n > 99 ? '99+' : String(n));
