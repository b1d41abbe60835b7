// The dashboard: sign-in, navigation, the live event stream, and the page router (#/page/arg).
// Pages are in pages.js; each returns a handle {onEvent(type, data), dispose()}.

import {api, ApiError, get, post, del, setCsrf} from './api.js';
import {h, put} from './dom.js';
import * as pages from './pages.js';

export const state = {
  me: null,            // {name, role, csrf}
  settings: null,      // {approval_mode, automation_paused}
  pending: new Map(),  // incident_id -> incident, for the approval count
  page: null,          // the current page's handle
  events: null,        // EventSource
};

const ROLE_RANK = {viewer: 1, operator: 2, admin: 3};
export function can(role) {
  return state.me !== null && (ROLE_RANK[state.me.role] || 0) >= ROLE_RANK[role];
}

const NAV = [
  ['incidents', 'Incidents', 'viewer'],
  ['fleet', 'Fleet', 'viewer'],
  ['alarms', 'Alarms', 'viewer'],
  ['chaos', 'Chaos', 'operator'],
  ['settings', 'Settings', 'viewer'],
  ['audit', 'Audit', 'admin'],
  ['tokens', 'Tokens', 'admin'],
];

function renderNav() {
  const nav = document.getElementById('nav');
  if (!state.me) { put(nav); return; }
  const current = (location.hash.slice(2).split('/')[0]) || 'incidents';
  put(nav, NAV.filter(([, , role]) => can(role)).map(([id, label]) =>
    h('a', {href: '#/' + id, class: id === current ? 'current' : '', 'data-nav': id}, label,
      id === 'incidents' ? h('span', {id: 'pending-count', class: 'count',
                                      title: 'incidents waiting for approval',
                                      hidden: state.pending.size === 0},
                             String(state.pending.size)) : null)));
  put(document.getElementById('who'),
      h('span', {class: 'principal', 'data-role': state.me.role}, state.me.name + ' (' + state.me.role + ')'),
      ' ',
      h('button', {class: 'link', 'data-action': 'sign-out', on: {click: signOut}}, 'Sign out'));
}

export function updatePendingCount() {
  const el = document.getElementById('pending-count');
  if (!el) return;
  el.textContent = String(state.pending.size);
  el.hidden = state.pending.size === 0;
}

export function renderBanner() {
  const b = document.getElementById('banner');
  const s = state.settings;
  if (!state.me || !s) { b.hidden = true; return; }
  if (s.automation_paused) {
    put(b, h('strong', {}, 'Automation is paused: '),
        'incidents are still diagnosed, but every fix waits for an operator to approve it ' +
        '(resume in Settings, or `medic resume`).');
    b.className = 'banner paused';
    b.hidden = false;
  } else if (!s.approval_mode) {
    put(b, 'Automatic mode: fixes run without approval.');
    b.className = 'banner auto';
    b.hidden = false;
  } else {
    b.hidden = true;
  }
}

function trackPending(inc) {
  if (inc.status === 'pending_approval') state.pending.set(inc.incident_id, inc);
  else state.pending.delete(inc.incident_id);
  updatePendingCount();
}

function connectEvents() {
  if (state.events) state.events.close();
  const live = document.getElementById('live');
  const es = new EventSource('/api/v1/events');
  state.events = es;
  es.onopen = () => { live.textContent = 'live'; live.className = 'live on'; };
  es.onerror = () => {
    live.textContent = 'reconnecting'; live.className = 'live off';
    // A closed stream after sign-out or expiry: find out who we are (401 shows the sign-in).
    if (es.readyState === EventSource.CLOSED) setTimeout(boot, 2000);
  };
  // The server ended the stream (too far behind, or the sign-in was revoked); EventSource
  // reconnects by itself, and a revoked sign-in then gets 401 (onerror above).
  es.addEventListener('dropped', (ev) => {
    let data = {};
    try { data = JSON.parse(ev.data); } catch { /* keep {} */ }
    console.warn('event stream dropped by the server:', data.reason, data.message);
    live.textContent = 'reconnecting'; live.className = 'live off';
  });
  for (const type of ['incident', 'alarm', 'host', 'settings']) {
    es.addEventListener(type, (ev) => {
      let data;
      try { data = JSON.parse(ev.data); } catch { return; }
      if (type === 'incident' && data && data.incident_id) trackPending(data);
      if (type === 'settings' && data && typeof data.automation_paused === 'boolean') {
        state.settings = data;
        renderBanner();
      }
      if (state.page && state.page.onEvent) {
        try { state.page.onEvent(type, data); } catch (e) { console.warn('page event', e); }
      }
    });
  }
}

async function loadCommon() {
  const [settings, pending] = await Promise.all([
    get('/api/v1/settings'),
    get('/api/v1/incidents?status=pending_approval&limit=1000&view=summary'),
  ]);
  state.settings = settings;
  state.pending = new Map(pending.incidents.map((i) => [i.incident_id, i]));
}

export async function refreshSettings() {
  state.settings = await get('/api/v1/settings');
  renderBanner();
  return state.settings;
}

async function route() {
  if (state.page && state.page.dispose) state.page.dispose();
  state.page = null;
  const main = document.getElementById('main');
  if (!state.me) return;
  const [name, ...rest] = location.hash.replace(/^#\/?/, '').split('/');
  const arg = rest.map(decodeURIComponent).join('/');
  const page = pages.ROUTES[name || 'incidents'];
  renderNav();
  if (!page) {
    put(main, h('p', {class: 'error'}, 'No such page: ' + name));
    return;
  }
  const need = (NAV.find(([id]) => id === name) || [])[2] || 'viewer';
  if (!can(need)) {
    put(main, h('p', {class: 'error', role: 'alert'},
                `This page needs the ${need} role; you are signed in as ${state.me.role}.`));
    return;
  }
  put(main, h('p', {class: 'muted'}, 'Loading…'));
  try {
    state.page = await page(main, arg) || null;
  } catch (e) {
    put(main, h('p', {class: 'error', role: 'alert'}, errorText(e)));
  }
}

export function errorText(e) {
  if (e instanceof ApiError) return e.status ? 'Error ' + e.status + ': ' + e.message : e.message;
  return 'Error: ' + (e && e.message ? e.message : String(e));
}

function showSignIn(message) {
  state.me = null;
  setCsrf('');
  if (state.events) { state.events.close(); state.events = null; }
  renderNav();
  renderBanner();
  document.getElementById('live').textContent = 'offline';
  const main = document.getElementById('main');
  const field = h('input', {type: 'password', id: 'token', name: 'token', autocomplete: 'off',
                            placeholder: 'API token', 'aria-label': 'API token', required: true});
  const err = h('p', {class: 'error', role: 'alert', hidden: !message}, message || '');
  const form = h('form', {class: 'signin', id: 'signin',
                          on: {submit: async (ev) => {
                            ev.preventDefault();
                            try {
                              await signIn({token: field.value.trim()});
                              field.value = '';
                            } catch (e) { err.hidden = false; err.textContent = errorText(e); }
                          }}},
    h('h1', {}, 'Sign in to medic'),
    h('p', {}, 'Paste an API token (viewer, operator or admin) once. The server answers with a ' +
               'session cookie; the token is not kept in this browser.'),
    field, h('button', {type: 'submit', class: 'primary'}, 'Sign in'), err,
    h('p', {class: 'muted'}, 'medic demo prints a one-time sign-in link; ',
      'an admin can make one with POST /api/v1/session/codes.'));
  put(main, form);
  field.focus();
}

async function signIn(body) {
  const s = await api('POST', '/api/v1/session', body);
  state.me = {name: s.name, role: s.role};
  setCsrf(s.csrf);
  await start();
}

async function signOut() {
  try { await del('/api/v1/session'); } catch { /* signed out either way */ }
  showSignIn('Signed out.');
}

async function start() {
  await loadCommon();
  renderBanner();
  connectEvents();
  if (!location.hash || location.hash.startsWith('#code=')) {
    history.replaceState(null, '', '#/incidents');
  }
  await route();
}

async function boot() {
  // A one-time sign-in link: #code=CODE. The code is exchanged once, then dropped from the URL.
  const m = location.hash.match(/^#code=([0-9A-Za-z_-]{1,200})$/);
  if (m) {
    history.replaceState(null, '', '#/incidents');
    try {
      await signIn({code: m[1]});
      return;
    } catch (e) {
      showSignIn('The sign-in link did not work (' + errorText(e) + '); it works once, for 5 minutes.');
      return;
    }
  }
  try {
    const s = await get('/api/v1/session');
    if (!s.csrf) throw new ApiError(401, 'no session');
    state.me = {name: s.name, role: s.role};
    setCsrf(s.csrf);
    await start();
  } catch (e) {
    showSignIn(e instanceof ApiError && e.status === 401 ? '' : errorText(e));
  }
}

window.addEventListener('hashchange', () => {
  if (location.hash.startsWith('#code=')) boot(); else route();
});
window.addEventListener('medic:signed-out', () => {
  if (state.me) showSignIn('Your session ended; sign in again.');
});
boot();
