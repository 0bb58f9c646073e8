// Forecast viewer: demand with 80/95 % bands (forecast/demand), the coming
// peak (forecast/peak) and the cheapest windows for an extra load
// (POST forecast/optimal-schedule).
import { api, picker, start, showError, $, el, fmt, fmtTime, card, hourFloor } from './common.js';
import { timeChart } from './chart.js';

let machine = null, origin = null;

// datetime-local inputs are read and written as UTC.
const toLocalInput = d => d.toISOString().slice(0, 16);
const fromLocalInput = v => new Date(v + ':00Z');

async function loadDemand() {
  const { data } = await api('forecast/demand', { params: { machine_id: machine.id, horizon: $('#horizon').value } });
  origin = data.origin ? new Date(data.origin) : null;
  $('#fc-info').textContent = data.origin ? `made from data up to ${fmtTime(data.origin)} · model ${data.model} · ${data.resolution}` : 'No forecast issued yet: the machine has too little closed history.';
  const b = data.forecast.map(f => [Date.parse(f.target_bucket), f]);
  const box = $('#chart-demand');
  if (!b.length) { box.textContent = 'No forecast yet.'; return; }
  timeChart(box, {
    bands: [
      { name: '95 %', color: '#1f5fa8', opacity: .15, points: b.map(([t, f]) => [t, f.lower_95_kw, f.upper_95_kw]) },
      { name: '80 %', color: '#1f5fa8', opacity: .3, points: b.map(([t, f]) => [t, f.lower_80_kw, f.upper_80_kw]) },
    ],
    series: [
      { name: 'predicted kW', color: '#1f5fa8', width: 2, dots: b.length < 40, points: b.map(([t, f]) => [t, f.predicted_kw]) },
      { name: 'actual kW', color: '#1d2430', dots: true, points: b.map(([t, f]) => [t, f.actual_kwh === null ? null : f.actual_kwh * f.predicted_kw / (f.predicted_kwh || NaN)]) },
    ],
  });
}

async function loadPeak() {
  const { data } = await api('forecast/peak', { params: { machine_id: machine.id } });
  if (!data.peak_time) { $('#peak-cards').replaceChildren(card('Coming peak', '—', 'no forecast yet', 'peak')); return; }
  $('#peak-cards').replaceChildren(
    card('Coming peak', fmt(data.peak_kw, 1), 'kW (average of the hour)', 'peak_kw'),
    card('When', fmtTime(data.peak_time), 'start of the hour', 'peak_time'),
    card('80 % interval', `${fmt(data.lower_80_kw, 1)} – ${fmt(data.upper_80_kw, 1)}`, 'kW', 'peak_80'),
    card('95 % upper', fmt(data.upper_95_kw, 1), 'kW', 'peak_95'));
}

function defaultSchedule() {
  const s = origin && origin > hourFloor() ? origin : new Date(hourFloor().getTime() + 3600e3);
  $('#s-start').value = toLocalInput(s);
  $('#s-end').value = toLocalInput(new Date(s.getTime() + 24 * 3600e3));
}

function windowRow(label, w, currency) {
  return el('tr', {}, el('td', {}, label), el('td', {}, fmtTime(w.start)), el('td', {}, fmtTime(w.end)),
    el('td', { class: 'num' }, `${fmt(w.cost, 2)} ${currency}`), el('td', { class: 'num' }, fmt(w.savings, 2)),
    el('td', { class: 'num' }, fmt(w.peak_demand_kw, 1)), el('td', { class: w.feasible ? 'pass' : 'fail' }, w.feasible ? 'yes' : 'no'));
}

async function schedule(ev) {
  ev.preventDefault();
  showError(null);
  const out = $('#schedule');
  try {
    const body = {
      load_kw: +$('#s-load').value, duration_hours: +$('#s-duration').value,
      earliest_start: fromLocalInput($('#s-start').value).toISOString(), latest_end: fromLocalInput($('#s-end').value).toISOString(),
    };
    if ($('#s-factory').checked) body.factory_id = machine.factory_id; else body.machine_id = machine.id;
    if ($('#s-cap').value !== '') body.peak_threshold_kw = +$('#s-cap').value;
    const { data } = await api('forecast/optimal-schedule', { method: 'POST', body });
    out.replaceChildren(
      el('p', { class: 'muted' }, (data.peak_threshold_kw === null
        ? `No peak cap (${data.peak_threshold_source}); ${data.feasible_candidates} of ${data.candidates} candidate windows fit the forecast`
        : `${data.feasible_candidates} of ${data.candidates} candidate windows keep demand + load at or under ${fmt(data.peak_threshold_kw, 1)} kW (${data.peak_threshold_source})`)
        + `; forecast ${fmtTime(data.forecast_from)} – ${fmtTime(data.forecast_to)}.`),
      el('table', { id: 'windows' }, el('thead', {}, el('tr', {}, ['', 'Start', 'End', 'Cost', 'Savings', 'Peak kW', 'Feasible'].map(h => el('th', {}, h)))),
        el('tbody', {}, data.windows.map((w, i) => windowRow(`#${i + 1}`, w, data.currency)), windowRow('at earliest start', data.baseline, data.currency))));
  } catch (e) { out.replaceChildren(); showError(e); }
}

async function reload() {
  showError(null);
  if (!machine) return;
  await Promise.all([loadDemand(), loadPeak()]);
  defaultSchedule();
}

start(async () => {
  $('#horizon').addEventListener('change', () => loadDemand().catch(showError));
  $('#schedule-form').addEventListener('submit', schedule);
  await picker(async m => { machine = m; await reload().catch(showError); });
});
