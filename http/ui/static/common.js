// Shared helpers: the API client (relative URLs only), the machine picker,
// number and time formatting, errors and client-side downloads.

// API is the /api/v1/ directory of this page: pages live at …/ui/<page>, so
// '../' is the API root whatever prefix a proxy put in front.
const API = new URL('../', location.href);

export function apiURL(path, params) {
  const u = new URL(path, API);
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== '') u.searchParams.set(k, v);
  }
  return u;
}

// ApiError carries the API's {"error": {"code", "message"}}.
export class ApiError extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}

// api fetches path (relative to the API root) and returns its JSON.
export async function api(path, { params, method = 'GET', body } = {}) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const token = localStorage.getItem('enms_api_token');
  if (token && method !== 'GET') headers.Authorization = 'Bearer ' + token;
  const r = await fetch(apiURL(path, params), { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  let data = null;
  try { data = await r.json(); } catch { /* empty or non-JSON body */ }
  if (!r.ok) {
    const e = data && data.error;
    throw new ApiError(r.status, e ? e.code : 'http_' + r.status, e ? e.message : `${method} ${path}: HTTP ${r.status}`);
  }
  return { status: r.status, data };
}

export function showError(err) {
  const el = document.getElementById('error');
  if (!err) { el.hidden = true; el.textContent = ''; return; }
  el.textContent = err instanceof Error ? err.message : String(err);
  el.hidden = false;
}

export function ready() {
  document.body.dataset.ready = '1';
  window.__readyMs = performance.now();
}

export const $ = (sel, root = document) => root.querySelector(sel);

export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v; else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'text') e.textContent = v; else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : String(c));
  return e;
}

export function fmt(v, digits = 2) {
  if (v === null || v === undefined || Number.isNaN(v)) return '—';
  if (typeof v !== 'number') return String(v);
  const a = Math.abs(v);
  if (a < 1e-9) return '0';
  if (a !== 0 && (a < 1e-3 || a >= 1e7)) return v.toExponential(2);
  return v.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: 0 });
}

export function pct(v, digits = 1) { return v === null || v === undefined ? '—' : fmt(v, digits) + ' %'; }

export function fmtTime(t) {
  if (!t) return '—';
  const d = new Date(t);
  return d.toISOString().slice(0, 16).replace('T', ' ') + ' UTC';
}

export function card(key, value, unit, id) {
  return el('div', { class: 'card', 'data-kpi': id || key }, el('div', { class: 'k' }, key), el('div', { class: 'v' }, value), el('div', { class: 'u' }, unit || ''));
}

export function download(name, type, text) {
  const a = el('a', { href: URL.createObjectURL(new Blob([text], { type })), download: name });
  document.body.append(a); a.click(); a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
}

// hourFloor is now rounded down to the whole hour (UTC).
export function hourFloor(d = new Date()) { const t = new Date(d); t.setUTCMinutes(0, 0, 0); return t; }

export function daysAgo(days, end = hourFloor()) { return new Date(end.getTime() - days * 86400e3); }

function initToken() {
  const inp = document.getElementById('api-token');
  inp.value = localStorage.getItem('enms_api_token') || '';
  inp.addEventListener('change', () => {
    if (inp.value) localStorage.setItem('enms_api_token', inp.value); else localStorage.removeItem('enms_api_token');
  });
}

function markNav() {
  const page = document.body.dataset.page;
  for (const a of document.querySelectorAll('header nav a')) {
    const target = a.getAttribute('href') === './' ? 'overview' : a.getAttribute('href');
    if (target === page) a.setAttribute('aria-current', 'page');
  }
}

// initialMachineID is the machine a page starts with: ?machine_id=, else the
// last one picked in this browser. Pages may prefetch with it.
export function initialMachineID() {
  return new URLSearchParams(location.search).get('machine_id') || localStorage.getItem('enms_machine');
}

// Picker is the machine picker: factory and type filters over /machines.
// onChange(machine) runs after the selection changes (and once at start).
export async function picker(onChange) {
  initToken(); markNav();
  const fSel = $('#pick-factory'), tSel = $('#pick-type'), mSel = $('#pick-machine'), info = $('#pick-info');
  const { data } = await api('machines');
  const machines = data.machines;
  const factories = new Map(machines.map(m => [m.factory_id, m.factory_name]));
  for (const [id, name] of [...factories].sort((a, b) => a[1].localeCompare(b[1]))) fSel.append(el('option', { value: id }, name));
  for (const t of [...new Set(machines.map(m => m.type))].sort()) tSel.append(el('option', { value: t }, t));
  const saved = initialMachineID();
  const state = { machines, factories, current: null };
  const fill = () => {
    const keep = mSel.value || saved;
    mSel.replaceChildren();
    const list = machines.filter(m => (!fSel.value || m.factory_id === fSel.value) && (!tSel.value || m.type === tSel.value));
    for (const m of list) mSel.append(el('option', { value: m.id }, `${m.name} (${m.factory_name})`));
    if (list.some(m => m.id === keep)) mSel.value = keep;
    info.textContent = `${list.length} of ${machines.length} machines`;
  };
  const changed = () => {
    state.current = machines.find(m => m.id === mSel.value) || null;
    if (state.current) localStorage.setItem('enms_machine', state.current.id);
    return onChange(state.current, state);
  };
  fSel.addEventListener('change', () => { fill(); changed(); });
  tSel.addEventListener('change', () => { fill(); changed(); });
  mSel.addEventListener('change', changed);
  fill();
  await changed();
  return state;
}

// run wraps a page's start: errors go to the error banner, and the page is
// marked ready either way (a failed load is still a drawn page).
export async function start(fn) {
  try { await fn(); } catch (e) { showError(e); } finally { ready(); }
}
