// Anomaly viewer: filters, episode list, resolve with a note
// (PUT anomaly/{id}/resolve {resolution_notes}), and a timeline of actual vs
// expected (baseline/deviation of the active baseline) with episodes shaded.
import { api, picker, start, showError, $, el, fmt, pct, fmtTime, card, hourFloor, daysAgo } from './common.js';
import { timeChart } from './chart.js';

let machine = null, episodes = [], cursor = null, resolving = null;

function windowOf() {
  const end = new Date(Math.max(Date.now(), hourFloor().getTime() + 3600e3));
  return { start: daysAgo(+$('#f-days').value, hourFloor()), end };
}

function query(extra = {}) {
  const w = windowOf();
  return { machine_id: $('#f-all').checked ? '' : machine?.id, severity: $('#f-severity').value, start: w.start.toISOString(), end: w.end.toISOString(), limit: 200, ...extra };
}

async function loadActive() {
  const { data } = await api('anomaly/active', { params: { machine_id: $('#f-all').checked ? '' : machine?.id } });
  const b = data.by_severity || {};
  $('#active-cards').replaceChildren(card('Unresolved', fmt(data.total, 0), data.machine_id ? 'this machine' : 'every machine', 'total'),
    card('Critical', fmt(b.critical || 0, 0), 'unresolved', 'critical'), card('Warning', fmt(b.warning || 0, 0), 'unresolved', 'warning'));
}

function row(a) {
  const status = a.is_resolved ? `resolved ${fmtTime(a.resolved_at)}: ${a.resolution_notes || ''}` : 'open';
  return el('tr', { 'data-id': a.id },
    el('td', {}, fmtTime(a.detected_at)), el('td', {}, a.machine_name), el('td', {}, a.anomaly_type),
    el('td', { class: 'sev-' + a.severity }, a.severity),
    el('td', { class: 'num' }, fmt(a.metric_value)), el('td', { class: 'num' }, fmt(a.expected_value)),
    el('td', { class: 'num' }, pct(a.deviation_percent)), el('td', { class: 'num' }, fmt(a.hour_count ?? 1, 0)),
    el('td', { class: 'status' }, status),
    el('td', {}, a.is_resolved ? '' : el('button', { type: 'button', class: 'link resolve', onclick: () => openResolve(a) }, 'Resolve')));
}

function drawList() {
  const shown = $('#f-open').checked ? episodes.filter(a => !a.is_resolved) : episodes;
  const body = $('#anomalies tbody');
  body.replaceChildren(...shown.map(row));
  if (!shown.length) body.append(el('tr', {}, el('td', { colspan: 10, class: 'muted' }, 'No anomaly episodes in this window.')));
  $('#more').hidden = !cursor;
}

async function loadList(more = false) {
  const { data } = await api('anomaly/recent', { params: query(more ? { cursor } : {}) });
  episodes = more ? episodes.concat(data.anomalies) : data.anomalies;
  cursor = data.next_cursor;
  drawList();
}

// loadTimeline draws actual vs expected once the episodes (for shading) are
// in; it asks for the active baseline meanwhile.
async function loadTimeline(listed) {
  const box = $('#chart-timeline');
  if ($('#f-all').checked || !machine) { box.textContent = 'Pick one machine (untick “every machine”) to see its timeline.'; await listed; return; }
  const [{ data: ms }] = await Promise.all([api('baseline/models', { params: { machine_id: machine.id, active: 'true', limit: 1 } }), listed]);
  if (!ms.models.length) { box.textContent = 'This machine has no active baseline yet, so there is no expected energy to compare with; train one in the baseline workbench.'; return; }
  const w = windowOf();
  const { data: dev } = await api('baseline/deviation', { params: { machine_id: machine.id, start: w.start.toISOString(), end: hourFloor().toISOString() } });
  const hrs = dev.hours.map(h => [Date.parse(h.hour), h]);
  const shades = episodes.filter(a => a.machine_id === machine.id).map(a => ({
    from: Date.parse(a.detected_at), to: Date.parse(a.last_hour || a.detected_at) + 3600e3,
    color: a.severity === 'critical' ? '#f1948a' : '#f8c471' }));
  timeChart(box, { shades, series: [
    { name: 'actual', color: '#1d2430', points: hrs.map(([t, h]) => [t, h.actual_kwh]) },
    { name: 'expected', color: '#1f5fa8', points: hrs.map(([t, h]) => [t, h.predicted_kwh]) },
  ] });
}

function openResolve(a) {
  resolving = a;
  $('#resolve-what').textContent = `${a.machine_name}: ${a.anomaly_type}, ${a.severity}, from ${fmtTime(a.detected_at)}`;
  $('#resolve-note').value = '';
  $('#resolve-dialog').showModal();
}

async function resolve(ev) {
  if (ev.submitter && ev.submitter.value !== 'ok') return;
  const note = $('#resolve-note').value.trim();
  if (!note) { ev.preventDefault(); return; }
  try {
    const { data } = await api(`anomaly/${resolving.id}/resolve`, { method: 'PUT', body: { resolution_notes: note } });
    episodes = episodes.map(a => (a.id === data.id ? { ...a, ...data } : a));
    drawList();
    await loadActive();
    $('#anomalies').dataset.resolved = data.id; // list and counts are up to date
  } catch (e) { showError(e); }
}

async function reload() {
  showError(null);
  const listed = loadList();
  await Promise.all([loadActive(), listed, loadTimeline(listed)]);
}

start(async () => {
  $('#filters').addEventListener('submit', e => { e.preventDefault(); reload().catch(showError); });
  $('#f-open').addEventListener('change', drawList);
  $('#more-btn').addEventListener('click', () => loadList(true).catch(showError));
  $('#resolve-form').addEventListener('submit', resolve);
  await picker(async m => { machine = m; await reload().catch(showError); });
});
