// Baseline workbench: pick drivers and a window, train through the queue
// (POST baseline/train?async=true, then poll baseline/train-requests/{id}),
// and inspect a model's fit, validity rules, coefficients and charts.
import { api, picker, initialMachineID, start, showError, $, el, fmt, pct, fmtTime, card, download, hourFloor, daysAgo } from './common.js';
import { timeChart, barChart, scatterChart } from './chart.js';

const DRIVERS = document.body.dataset.drivers.split(',');
let machine = null, model = null, deviation = null, models = [];

// prefetch asks for the starting machine's models while the picker loads
// the machine list (one round trip less before the first chart).
let prefetch = null;

function drawDrivers() {
  const box = $('#drivers');
  for (const d of DRIVERS) {
    box.append(el('label', {}, el('input', { type: 'checkbox', name: 'driver', value: d, checked: d === 'production_count' }), ' ' + d));
  }
}

const isoDate = d => d.toISOString().slice(0, 10);

// trainingWindow is [start, end) from the preset, or from the custom dates
// (whole UTC days, the end date included).
function trainingWindow() {
  const preset = document.querySelector('input[name=preset]:checked').value;
  if (preset !== 'custom') {
    const end = hourFloor();
    return { start: daysAgo(+preset, end), end };
  }
  const s = $('#start-date').value, e = $('#end-date').value;
  if (!s || !e) throw new Error('Give both dates of the custom window.');
  const start = new Date(s + 'T00:00:00Z'), end = new Date(new Date(e + 'T00:00:00Z').getTime() + 86400e3);
  if (!(start < end)) throw new Error('The custom window must start before it ends.');
  return { start, end };
}

function syncDates() {
  const preset = document.querySelector('input[name=preset]:checked').value;
  if (preset === 'custom') return;
  const w = trainingWindow();
  $('#start-date').value = isoDate(w.start);
  $('#end-date').value = isoDate(new Date(w.end.getTime() - 1));
}

const sleep = ms => new Promise(r => setTimeout(r, ms));

async function train(ev) {
  ev.preventDefault();
  showError(null);
  const status = $('#train-status'), btn = $('#train-btn');
  try {
    if (!machine) throw new Error('Pick a machine first.');
    const drivers = [...document.querySelectorAll('input[name=driver]:checked')].map(i => i.value);
    if (!drivers.length) throw new Error('Pick at least one driver.');
    const w = trainingWindow();
    btn.disabled = true;
    status.textContent = 'queued…';
    let { data: req } = await api('baseline/train', {
      method: 'POST', params: { async: 'true' },
      body: { machine_id: machine.id, drivers, training_start: w.start.toISOString(), training_end: w.end.toISOString(), requested_by: 'ui' },
    });
    const t0 = Date.now();
    while (!['done', 'rejected', 'failed'].includes(req.status)) {
      const secs = (Date.now() - t0) / 1000;
      status.textContent = `${req.status}… ${secs.toFixed(1)} s` + (req.status === 'pending' && secs > 30
        ? ' (no worker has claimed the request yet: is the analytics worker running?)' : '');
      await sleep(400);
      ({ data: req } = await api('baseline/train-requests/' + req.id));
    }
    status.dataset.status = req.status;
    status.textContent = req.status === 'done' ? 'done: a new active baseline'
      : `${req.status}: ${req.error || 'no reason given'}`;
    status.className = 'status ' + (req.status === 'done' ? 'pass' : 'fail');
    if (req.baseline_id) await loadModels(req.baseline_id);
  } catch (e) {
    status.textContent = '';
    showError(e);
  } finally {
    btn.disabled = false;
  }
}

async function loadModels(selectID) {
  const sel = $('#model-select');
  sel.replaceChildren();
  model = deviation = null;
  $('#results').hidden = true;
  $('#export-csv').disabled = $('#export-json').disabled = true;
  if (!machine) return;
  const pending = prefetch && prefetch.id === machine.id ? prefetch.models : api('baseline/models', { params: { machine_id: machine.id, limit: 50 } });
  prefetch = null;
  const { data } = await pending;
  models = data.models;
  if (!data.models.length) { sel.append(el('option', { value: '' }, 'no baseline yet')); return; }
  for (const m of data.models) {
    sel.append(el('option', { value: m.id }, `v${m.model_version}${m.is_active ? ' · active' : ''} · R² ${fmt(m.r_squared, 3)} · ${fmtTime(m.created_at)}`));
  }
  const pick = data.models.find(m => m.id === selectID) || data.models.find(m => m.is_active) || data.models[0];
  sel.value = pick.id;
  await showModel(pick);
}

// showModel fetches the model's fit report and its hourly comparison in
// parallel (the list entry already has the training window).
async function showModel(entry) {
  const dev = loadDeviation(entry);
  ({ data: model } = await api('baseline/model/' + entry.id));
  const fit = (model.metadata && model.metadata.fit) || {};
  $('#results').hidden = false;
  $('#export-json').disabled = false;
  $('#fit-cards').replaceChildren(
    card('R²', fmt(fit.r_squared, 4), '', 'r_squared'),
    card('Adjusted R²', fmt(fit.adj_r_squared, 4), '', 'adj_r_squared'),
    card('CV(RMSE)', pct(fit.cv_rmse, 2), 'ASHRAE G14: ≤ 30 % hourly', 'cv_rmse'),
    card('NMBE', pct(fit.nmbe, 3), 'ASHRAE G14: within ±10 % hourly', 'nmbe'),
    card('RMSE', fmt(fit.rmse, 3), 'kWh', 'rmse'),
    card('MAE', fmt(fit.mae, 3), 'kWh', 'mae'),
    card('Hours (n)', fmt(fit.n, 0), `p = ${fit.p} terms`, 'n'),
    card('F p-value', fmt(fit.f_p_value, 4), `F = ${fmt(fit.f_stat, 1)}`, 'f_p_value'),
    card('Lag-1 autocorrelation', fmt(fit.autocorr_lag1, 3), 'of residuals', 'autocorr_lag1'),
    card('Valid', fit.validity && fit.validity.valid ? 'yes' : 'no', model.is_active ? 'active baseline' : 'inactive', 'valid'),
  );
  const rules = (fit.validity && fit.validity.rules) || [];
  $('#rules tbody').replaceChildren(...rules.map(r => el('tr', { 'data-rule': r.name },
    el('td', {}, r.name), el('td', { class: 'num' }, fmt(r.value, 4)), el('td', { class: 'num' }, fmt(r.threshold, 4)),
    el('td', { class: r.passed ? 'pass' : 'fail' }, r.passed ? 'pass' : 'fail'))));
  const coefs = Object.entries(fit.coefficients || {});
  coefs.sort((a, b) => (a[0] === 'intercept' ? -1 : b[0] === 'intercept' ? 1 : a[0].localeCompare(b[0], 'en', { numeric: true })));
  $('#coefs tbody').replaceChildren(...coefs.map(([name, c]) => el('tr', { 'data-term': name },
    el('td', {}, name), el('td', { class: 'num' }, fmt(c.estimate, 4)), el('td', { class: 'num' }, fmt(c.std_error, 4)),
    el('td', { class: 'num' }, fmt(c.t, 2)), el('td', { class: 'num' }, fmt(c.p_value, 4)))));
  const contrib = coefs.map(([name, c]) => ({ label: name, value: name === 'intercept' ? c.estimate : c.estimate * ((fit.drivers || {})[name]?.mean ?? NaN) }))
    .filter(i => Number.isFinite(i.value));
  barChart($('#chart-contrib'), contrib);
  await dev;
}

async function loadDeviation(entry) {
  const end = new Date(entry.training_end_date || hourFloor());
  let startT = new Date(entry.training_start_date || daysAgo(90, end));
  if (end - startT > 400 * 86400e3) startT = new Date(end - 400 * 86400e3);
  try {
    ({ data: deviation } = await api('baseline/deviation', { params: { machine_id: entry.machine_id, baseline_id: entry.id, start: startT.toISOString(), end: end.toISOString() } }));
  } catch (e) {
    deviation = null;
    $('#chart-fit').textContent = $('#chart-resid').textContent = 'No hourly comparison: ' + e.message;
    return;
  }
  const hrs = deviation.hours.map(h => [Date.parse(h.hour), h]);
  scatterChart($('#chart-fit'), deviation.hours.map(h => [h.predicted_kwh, h.actual_kwh]), { xName: 'predicted kWh', yName: 'actual kWh' });
  timeChart($('#chart-resid'), { zeroLine: true, series: [{ name: 'residual', color: '#c0661a', points: hrs.map(([t, h]) => [t, h.deviation_kwh]) }] });
  $('#export-csv').disabled = !hrs.length;
}

function exportCSV() {
  const rows = ['hour,actual_kwh,predicted_kwh,deviation_kwh,std_error_kwh,z,severity'];
  for (const h of deviation.hours) rows.push([h.hour, h.actual_kwh, h.predicted_kwh, h.deviation_kwh, h.std_error_kwh, h.z, h.severity].join(','));
  download(`baseline-${model.machine_id}-v${model.model_version}-hourly.csv`, 'text/csv', rows.join('\n') + '\n');
}

function exportJSON() {
  download(`baseline-${model.machine_id}-v${model.model_version}.json`, 'application/json', JSON.stringify(model, null, 2));
}

start(async () => {
  const first = initialMachineID();
  if (first) {
    prefetch = { id: first, models: api('baseline/models', { params: { machine_id: first, limit: 50 } }) };
    prefetch.models.catch(() => {}); // a stale id: loadModels asks again or reports
  }
  drawDrivers();
  syncDates();
  for (const r of document.querySelectorAll('input[name=preset]')) r.addEventListener('change', syncDates);
  for (const d of ['#start-date', '#end-date']) $(d).addEventListener('change', () => { document.querySelector('input[name=preset][value=custom]').checked = true; });
  $('#train-form').addEventListener('submit', train);
  $('#model-select').addEventListener('change', e => {
    const entry = models.find(m => m.id === e.target.value);
    if (entry) showModel(entry).catch(showError);
  });
  $('#export-csv').addEventListener('click', exportCSV);
  $('#export-json').addEventListener('click', exportJSON);
  await picker(async m => { machine = m; showError(null); await loadModels().catch(showError); });
});
