// The /dashboard page: signs in with an admin or QA key and draws every figure from /v1/analytics…
// Data always becomes text (textContent) or chart data, never HTML.
"use strict";

(function () {
  const { el } = window.ThreadlineDom;
  const config = JSON.parse(document.getElementById("dashboard-config").textContent);
  const KEY_STORE = "threadline.dashboard.key";
  const COLORS = { web: "#4338ca", sms: "#15803d", email: "#b45309", voice: "#0f766e", social: "#be185d", store: "#6d28d9" };
  const PALETTE = ["#4338ca", "#15803d", "#b45309", "#0f766e", "#be185d", "#6d28d9", "#0369a1", "#a16207", "#475569"];
  const charts = {};
  const $ = (id) => document.getElementById(id);

  function label(text) { return String(text).replaceAll("_", " "); }
  function channelName(key) { return config.channels[key] || key; }

  function percent(value) { return value === null || value === undefined ? "–" : (value * 100).toFixed(1) + "%"; }
  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    if (seconds < 90) return seconds.toFixed(1) + " s";
    if (seconds < 5400) return (seconds / 60).toFixed(1) + " min";
    return (seconds / 3600).toFixed(1) + " h";
  }
  const FORMAT = {
    involvement: percent, containment: percent, first_contact_resolution: percent, conversation_resolution: percent,
    ai_resolution: percent,
    escalation_rate: percent, handoff_abandonment: percent, median_time_to_human_s: duration,
    mean_usefulness: (v) => (v === null ? "–" : v.toFixed(2) + " / 5"),
    mean_facts_reasked: (v) => (v === null ? "–" : v.toFixed(2)),
  };

  async function api(path, params) {
    const query = new URLSearchParams(Object.entries(params).filter(([, v]) => v));
    const response = await fetch(`${config.api}${path}?${query}`, {
      headers: { Authorization: `Bearer ${sessionStorage.getItem(KEY_STORE) || ""}` },
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      const error = new Error((body.error && body.error.message) || `HTTP ${response.status}`);
      error.status = response.status;
      throw error;
    }
    return body;
  }

  function filters() {
    return { from: $("f-from").value, to: $("f-to").value, channel: $("f-channel").value, hours: $("f-hours").value };
  }

  function draw(id, type, data, options, values) {
    const figure = document.querySelector(`[data-chart="${id}"]`);
    if (charts[id]) charts[id].destroy();
    const empty = !data.labels.length;
    figure.querySelector(".empty").hidden = !empty;
    figure.querySelector(".chart-box").hidden = empty;
    charts[id] = new window.Chart($(`chart-${id}`), {
      type,
      data,
      options: Object.assign({ animation: false, responsive: true, maintainAspectRatio: false,
        plugins: { legend: { position: "bottom" } } }, options || {}),
    });
    figure.dataset.values = JSON.stringify(values);
    figure.dataset.rendered = "true";
  }

  const pct = { ticks: { callback: (v) => v + "%" }, min: 0, max: 100 };
  const asPct = (v) => (v === null || v === undefined ? null : Math.round(v * 1000) / 10);

  function renderKpis(summary, attribution) {
    for (const [key, value] of Object.entries(summary.headline)) {
      const node = document.querySelector(`[data-testid="kpi-${key}"]`);
      if (!node) continue;
      node.textContent = (FORMAT[key] || ((v) => (v === null ? "–" : String(v))))(value);
      node.dataset.value = JSON.stringify(value);
      const why = document.querySelector(`[data-testid="why-${key}"]`);
      if (why) why.textContent = summary.explanations[key] || "";
    }
    const credited = document.querySelector('[data-testid="kpi-attributed_purchases"]');
    credited.textContent = `${attribution.attributed_purchases} / ${attribution.purchases}`;
    credited.dataset.value = JSON.stringify(attribution.attributed_purchases);
    $("attributed-hint").textContent =
      `AI conversation within ${attribution.window_days} days · ${attribution.attributed_revenue.toFixed(2)} revenue`;
  }

  function renderVolumes(summary) {
    const keys = Object.keys(summary.volumes_by_channel);
    const counts = keys.map((k) => summary.volumes_by_channel[k]);
    draw("volumes", "bar", {
      labels: keys.map(channelName),
      datasets: [{ label: "Conversations", data: counts, backgroundColor: keys.map((k) => COLORS[k] || "#475569") }],
    }, { plugins: { legend: { display: false } }, scales: { y: { ticks: { precision: 0 } } } },
    Object.fromEntries(keys.map((k, i) => [k, counts[i]])));
  }

  function renderTrend(metrics) {
    const days = Object.keys(metrics.by_day);
    const containment = days.map((d) => asPct(metrics.by_day[d].containment));
    const fcr = days.map((d) => asPct(metrics.by_day[d].first_contact_resolution));
    draw("trend", "line", {
      labels: days,
      datasets: [
        { label: "Containment", data: containment, borderColor: "#4338ca", backgroundColor: "#4338ca", spanGaps: true },
        { label: "First-contact resolution", data: fcr, borderColor: "#15803d", backgroundColor: "#15803d", spanGaps: true },
      ],
    }, { scales: { y: pct } }, { days, containment, first_contact_resolution: fcr });
  }

  function renderReasons(metrics) {
    const reasons = metrics.overall.escalation_reasons;
    const keys = Object.keys(reasons);
    draw("reasons", "bar", {
      labels: keys.map(label),
      datasets: [{ label: "Handoffs", data: keys.map((k) => reasons[k]), backgroundColor: PALETTE }],
    }, { indexAxis: "y", plugins: { legend: { display: false } }, scales: { x: { ticks: { precision: 0 } } } },
    reasons);
  }

  function renderHours(metrics) {
    const sides = ["business", "after_hours"];
    const measures = [["containment", "Containment"], ["first_contact_resolution", "First-contact resolution"],
      ["escalation_rate", "Escalation rate"], ["involvement", "AI involvement"]];
    const values = {};
    const datasets = sides.map((side, i) => {
      const row = metrics.by_hours[side] || {};
      values[side] = Object.fromEntries(measures.map(([k]) => [k, asPct(row[k])]));
      return { label: `${config.hours[side]} (${row.conversations || 0} conversations)`,
        data: measures.map(([k]) => asPct(row[k])), backgroundColor: i ? "#b45309" : "#4338ca" };
    });
    const any = sides.some((s) => metrics.by_hours[s]);
    draw("hours", "bar", { labels: any ? measures.map(([, name]) => name) : [], datasets },
      { scales: { y: pct } }, values);
  }

  function renderAttribution(attribution) {
    const keys = Object.keys(attribution.by_channel);
    const last = keys.map((k) => attribution.by_channel[k].last_touch.purchases);
    const linear = keys.map((k) => attribution.by_channel[k].linear.purchases);
    draw("attribution", "bar", {
      labels: keys.map(channelName),
      datasets: [
        { label: "Last touch", data: last, backgroundColor: "#4338ca" },
        { label: "Linear", data: linear, backgroundColor: "#0f766e" },
      ],
    }, {}, Object.fromEntries(keys.map((k, i) => [k, { last_touch: last[i], linear: linear[i] }])));
  }

  function renderActions(actions) {
    const rows = Object.entries(actions.done_by_kind).map(([kind, by]) => el("tr", { "data-kind": kind },
      el("th", { scope: "row", text: kind.replace(/_/g, " ") }),
      el("td", { text: String(by.ai) }),
      el("td", { text: String(by.agent) })));
    $("actions-body").replaceChildren(...(rows.length ? rows
      : [el("tr", {}, el("td", { colspan: "3", class: "muted", text: "None in this range." }))]));
    $("actions-refused").textContent = `${actions.refused} refused by the store policy.`;
  }

  function deliveryRow(rate, name, testid) {
    return el("tr", { "data-channel": rate.channel, "data-testid": testid },
      el("th", { scope: "row", text: name }),
      el("td", { "data-cell": "total", text: String(rate.total) }),
      el("td", { "data-cell": "failed", text: String(rate.failed) }),
      el("td", { "data-cell": "dead", text: String(rate.dead) }),
      el("td", { "data-cell": "rate", text: percent(rate.rate) }));
  }

  function renderDelivery(report) {
    const rows = report.by_channel.map((r) => deliveryRow(r, channelName(r.channel), "delivery-channel"));
    $("delivery-body").replaceChildren(...(rows.length ? rows
      : [el("tr", {}, el("td", { colspan: "5", class: "muted", text: "Nothing was sent through a provider in this range." }))]));
    $("delivery-overall").replaceChildren(...(rows.length > 1 ? [deliveryRow(report.overall, "All channels", "delivery-all")] : []));
  }

  const OUTCOMES = [["confirmed", "Resolved, confirmed by the customer"], ["assumed", "Resolved, assumed (did not come back)"],
    ["reopened", "Came back within the reopen window"], ["no_useful_answer", "No useful answer"],
    ["handed_off", "Handed to a person"]];

  function renderOutcomes(outcomes) {
    const total = Object.values(outcomes).reduce((a, b) => a + b, 0);
    $("outcomes-body").replaceChildren(...OUTCOMES.map(([key, name]) => el("tr", { "data-outcome": key },
      el("th", { scope: "row", text: name }),
      el("td", { "data-testid": `outcome-${key}`, text: String(outcomes[key] || 0) }),
      el("td", { text: total ? percent((outcomes[key] || 0) / total) : "–" }))));
  }

  function renderGaps(queries) {
    $("gap-queries").replaceChildren(...(queries.length ? queries.map((q) => el("li", { class: "path", "data-testid": "gap-query",
      "data-count": String(q.count) },
      el("span", { class: "path-count", text: `${q.count}×` }),
      el("span", { class: "path-steps", text: q.query }))) : [el("li", { class: "muted", text: "None in this range." })]));
  }

  function renderPaths(list, paths) {
    list.replaceChildren(...(paths.length ? paths.map((p) => el("li", { class: "path", "data-testid": "path",
      "data-count": String(p.count) },
      el("span", { class: "path-count", text: `${p.count}×` }),
      el("span", { class: "path-steps", text: p.path.join(" → ") }))) : [el("li", { class: "muted", text: "None yet." })]));
  }

  async function load() {
    const status = $("status");
    status.textContent = "Loading…";
    document.body.dataset.loaded = "false";
    try {
      const params = filters();
      const [summary, metrics, journeys, attribution, delivery] = await Promise.all([
        api("/summary", params), api("/metrics", params), api("/journeys", params), api("/attribution", params),
        api("/delivery", params),
      ]);
      $("f-from").value = summary.filters.from;
      $("f-to").value = summary.filters.to;
      renderKpis(summary, attribution);
      renderVolumes(summary);
      renderTrend(metrics);
      renderReasons(metrics);
      renderHours(metrics);
      renderAttribution(attribution);
      renderActions(summary.order_actions);
      renderDelivery(delivery);
      renderOutcomes(summary.outcomes);
      renderGaps(summary.top_gap_queries);
      renderPaths($("paths-purchase"), journeys.top_paths_to_purchase);
      renderPaths($("paths-escalation"), journeys.top_paths_to_escalation);
      status.textContent = `${summary.filters.from} to ${summary.filters.to}`;
      document.body.dataset.loaded = "true";
    } catch (error) {
      status.textContent = error.message;
      if (error.status === 401 || error.status === 403) signOut(error.message);
    }
  }

  function signOut(message) {
    sessionStorage.removeItem(KEY_STORE);
    document.body.dataset.view = "signin";
    $("dashboard").hidden = true;
    $("session").hidden = true;
    $("signin").hidden = false;
    const error = $("signin-error");
    error.hidden = !message;
    error.textContent = message || "";
  }

  function signedIn() {
    document.body.dataset.view = "dashboard";
    $("signin").hidden = true;
    $("dashboard").hidden = false;
    $("session").hidden = false;
    $("whoami").textContent = "Signed in";
    load();
  }

  $("signin-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY_STORE, $("api-key").value.trim());
    $("api-key").value = "";
    signedIn();
  });
  $("filters").addEventListener("submit", (event) => { event.preventDefault(); load(); });
  $("sign-out").addEventListener("click", () => signOut(""));
  if (sessionStorage.getItem(KEY_STORE)) signedIn();
  document.body.dataset.ready = "true";
})();
