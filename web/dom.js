// DOM helpers. Every string reaches the page as a text node or an attribute value set through
// the DOM: nothing is ever parsed as HTML (no HTML-parsing DOM property is used in web/), so what a host or a
// model wrote is shown, never run. Links are only ever in-app (#/...) or same-origin API paths.

const SAFE_HREF = /^(#\/|\/api\/v1\/)/;

// h('a', {href: '#/x', class: 'c', on: {click: f}}, 'text', child, [more]) -> Element
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'on') {
      for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn);
    } else if (k === 'href') {
      if (SAFE_HREF.test(String(v))) el.setAttribute('href', String(v));
    } else if (k === 'class') {
      el.className = String(v);
    } else if (k === 'value') {
      el.value = String(v);
    } else if (k === 'checked' || k === 'disabled' || k === 'hidden' || k === 'selected') {
      el[k] = Boolean(v);
    } else if (/^(on|style$|srcdoc$|src$|formaction$|action$)/i.test(k)) {
      throw new Error('h(): refusing attribute ' + k);
    } else {
      el.setAttribute(k, v === true ? '' : visible(v));
    }
  }
  append(el, children);
  return el;
}

// What a host or a model wrote, made visible the way medic's CLI and reports show it
// (SanitizeForDisplay in src/core/display.h): control characters other than newline and tab
// become \xNN (C1 controls \u00NN), bidirectional marks and overrides \uNNNN, so an escape
// sequence or a "Trojan Source" reordering is seen, not obeyed.
const INVISIBLE = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;
export function visible(text) {
  return String(text).replace(/\r\n/g, '\n').replace(INVISIBLE, (c) => {
    const code = c.charCodeAt(0);
    return code < 0x80 ? '\\x' + code.toString(16).padStart(2, '0')
                       : '\\u' + code.toString(16).padStart(4, '0');
  });
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(visible(c)));
  }
}

// Replaces el's children.
export function put(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export function svg(tag, attrs) {
  const el = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  return el;
}

// "2026-12-06T12:51:30.402Z" -> "12:51:30" today, else "Dec 6 12:51:30".
export function fmtTime(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  if (isNaN(d)) return String(iso);
  const now = new Date();
  const hms = d.toLocaleTimeString([], {hour12: false});
  return d.toDateString() === now.toDateString()
      ? hms : d.toLocaleDateString([], {month: 'short', day: 'numeric'}) + ' ' + hms;
}

// 1234 -> "1.2 s"; 75000 -> "1m 15s".
export function fmtDuration(ms) {
  if (ms === null || ms === undefined || isNaN(ms)) return '—';
  if (ms < 0) ms = 0;
  if (ms < 1000) return Math.round(ms) + ' ms';
  if (ms < 60000) return (ms / 1000).toFixed(1) + ' s';
  const s = Math.round(ms / 1000);
  if (s < 3600) return Math.floor(s / 60) + 'm ' + (s % 60) + 's';
  return Math.floor(s / 3600) + 'h ' + Math.floor((s % 3600) / 60) + 'm';
}

export function ago(iso) {
  if (!iso) return '—';
  const ms = Date.now() - Date.parse(iso);
  return isNaN(ms) ? String(iso) : fmtDuration(ms) + ' ago';
}

export function fmtNum(v, digits = 1) {
  return typeof v === 'number' && isFinite(v) ? v.toFixed(digits) : '—';
}

// A status word as a badge: <span class="badge s-completed">completed</span>
export function badge(word, extra) {
  return h('span', {class: 'badge s-' + String(word).replace(/[^a-z_]/gi, '_'),
                    'data-status': word}, extra ?? word);
}

// An in-page confirmation (no window.confirm): resolves true when the operator confirms.
export function confirmBox(parent, {title, lines = [], confirmLabel, danger = true, input}) {
  return new Promise((resolve) => {
    const field = input ? h('input', {type: 'text', placeholder: input, class: 'comment',
                                      'aria-label': input}) : null;
    const box = h('div', {class: 'confirm', role: 'dialog', 'aria-label': title},
      h('h3', {}, title),
      lines.map((l) => (typeof l === 'object' && l.code ? h('pre', {class: 'command'}, l.code) : h('p', {}, l))),
      field,
      h('div', {class: 'buttons'},
        h('button', {class: danger ? 'danger' : 'primary', 'data-action': 'confirm',
                     on: {click: () => { box.remove(); resolve({ok: true, text: field ? field.value : ''}); }}},
          confirmLabel),
        h('button', {'data-action': 'cancel',
                     on: {click: () => { box.remove(); resolve({ok: false}); }}}, 'Cancel')));
    parent.querySelectorAll(':scope > .confirm').forEach((n) => n.remove());
    parent.appendChild(box);
    (field || box.querySelector('button')).focus();
  });
}
