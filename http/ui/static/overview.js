// Overview: unresolved anomalies of the plant, the machine list (following
// the picker's filters) and the picked machine's coming peak.
import { api, picker, start, showError, $, el, fmt, fmtTime, card } from './common.js';

async function loadActive() {
  const { data } = await api('anomaly/active');
  const b = data.by_severity || {};
  $('#active-cards').replaceChildren(
    card('Unresolved anomalies', fmt(data.total, 0), 'every machine', 'total'),
    card('Critical', fmt(b.critical || 0, 0), 'unresolved', 'critical'),
    card('Warning', fmt(b.warning || 0, 0), 'unresolved', 'warning'));
}

function drawMachines(state) {
  const f = $('#pick-factory').value, t = $('#pick-type').value;
  const list = state.machines.filter(m => (!f || m.factory_id === f) && (!t || m.type === t));
  $('#machines-table tbody').replaceChildren(...list.map(m => el('tr', { 'data-id': m.id },
    el('td', {}, el('a', { href: 'baseline?machine_id=' + encodeURIComponent(m.id) }, m.name)), el('td', {}, m.factory_name), el('td', {}, m.type),
    el('td', { class: 'num' }, fmt(m.rated_power_kw, 1)), el('td', {}, m.is_active ? 'yes' : 'no'))));
}

async function loadPeak(m) {
  const box = $('#peak');
  if (!m) { box.textContent = '—'; return; }
  const { data } = await api('forecast/peak', { params: { machine_id: m.id } });
  box.textContent = data.peak_time ? `${m.name}: ${fmt(data.peak_kw, 1)} kW in the hour from ${fmtTime(data.peak_time)} (80 %: ${fmt(data.lower_80_kw, 1)}–${fmt(data.upper_80_kw, 1)} kW)`
    : `${m.name}: no forecast issued yet.`;
}

start(async () => {
  await Promise.all([loadActive().catch(showError), picker(async (m, state) => { drawMachines(state); await loadPeak(m).catch(showError); })]);
});
