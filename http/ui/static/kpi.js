// KPI cards for the picked machine (kpi/all) and its factory
// (kpi/factory/{id}) over the chosen window.
import { api, picker, start, showError, $, el, fmt, pct, card, hourFloor, daysAgo } from './common.js';

let machine = null, all = [];

// MAX_ROWS bounds the per-machine table (one kpi/all request per machine).
const MAX_ROWS = 40;

function windowOf() { const end = hourFloor(); return { start: daysAgo(+$('#k-days').value, end).toISOString(), end: end.toISOString() }; }

async function loadMachine() {
  const w = windowOf();
  const { data } = await api('kpi/all', { params: { machine_id: machine.id, ...w } });
  const k = data.kpis, t = data.totals;
  $('#machine-title').textContent = `Machine: ${data.machine_name} (${data.machine_type}), ${fmt(data.time_period.hours, 0)} h`;
  $('#machine-cards').replaceChildren(
    card('Energy', fmt(t.total_energy_kwh, 1), 'kWh', 'total_energy_kwh'),
    card('SEC', fmt(k.sec.value, 4), k.sec.unit, 'sec'),
    card('Peak demand', fmt(k.peak_demand.value, 1), k.peak_demand.unit, 'peak_demand'),
    card('Average power', fmt(t.avg_power_kw, 1), 'kW', 'avg_power_kw'),
    card('Load factor', pct(k.load_factor.percent), 'average / peak power', 'load_factor'),
    card('Energy cost', fmt(k.energy_cost.value, 2), k.energy_cost.currency, 'energy_cost'),
    card('Cost per unit', fmt(k.energy_cost.cost_per_unit, 4), k.energy_cost.currency + '/unit', 'cost_per_unit'),
    card('CO₂', fmt(k.carbon_intensity.value, 1), k.carbon_intensity.unit, 'carbon'),
    card('CO₂ per unit', fmt(k.carbon_intensity.co2_per_unit, 4), 'kg/unit', 'co2_per_unit'),
    card('Production', fmt(t.total_production_units, 0), 'units', 'production'));
}

async function loadFactory() {
  const w = windowOf();
  const { data } = await api('kpi/factory/' + machine.factory_id, { params: w });
  $('#factory-title').textContent = `Factory: ${data.factory_name}`;
  $('#factory-cards').replaceChildren(
    card('Machines', `${data.active_machines} / ${data.machine_count}`, 'active / all', 'machines'),
    card('Energy', fmt(data.total_energy_kwh, 1), 'kWh', 'factory_energy'),
    card('Energy cost', fmt(data.total_cost, 2), '', 'factory_cost'),
    card('CO₂', fmt(data.total_co2_kg, 1), 'kg', 'factory_co2'),
    card('Average load factor', data.avg_load_factor === null ? '—' : pct(data.avg_load_factor * 100), '', 'factory_load_factor'));
}

async function loadFactoryMachines() {
  const w = windowOf();
  const list = all.filter(m => m.factory_id === machine.factory_id).slice(0, MAX_ROWS);
  const rows = await Promise.all(list.map(m => api('kpi/all', { params: { machine_id: m.id, ...w } }).then(r => r.data, e => ({ error: e.message, machine_name: m.name, machine_type: m.type }))));
  $('#factory-machines tbody').replaceChildren(...rows.map(r => r.error
    ? el('tr', {}, el('td', {}, r.machine_name), el('td', {}, r.machine_type), el('td', { colspan: 6, class: 'fail' }, r.error))
    : el('tr', { 'data-id': r.machine_id }, el('td', {}, r.machine_name), el('td', {}, r.machine_type),
      el('td', { class: 'num' }, fmt(r.totals.total_energy_kwh, 1)), el('td', { class: 'num' }, fmt(r.kpis.sec.value, 4)),
      el('td', { class: 'num' }, fmt(r.kpis.peak_demand.value, 1)), el('td', { class: 'num' }, pct(r.kpis.load_factor.percent)),
      el('td', { class: 'num' }, `${fmt(r.kpis.energy_cost.value, 2)} ${r.kpis.energy_cost.currency}`), el('td', { class: 'num' }, fmt(r.kpis.carbon_intensity.value, 1)))));
}

async function reload() {
  showError(null);
  if (!machine) {
    for (const id of ['#machine-cards', '#factory-cards', '#factory-machines tbody']) $(id).replaceChildren();
    return;
  }
  await Promise.all([loadMachine(), loadFactory(), loadFactoryMachines()]);
}

start(async () => {
  $('#k-days').addEventListener('change', () => reload().catch(showError));
  await picker(async (m, state) => { machine = m; all = state.machines; await reload().catch(showError); });
});
