// The /console agent console: sign in with an agent key, work the handoff queue, reply, release, resolve, rate.
// Every read and action goes to the keyed API; the page holds no data of its own. No dependencies.
// Everything customer-, model- or agent-written goes into the page through textContent, never as HTML.
"use strict";

(function () {
  const config = JSON.parse(document.getElementById("console-config").textContent);
  const $ = (id) => document.getElementById(id);
  const els = {
    body: document.body,
    session: $("session"),
    live: $("live"),
    liveText: $("live-text"),
    whoami: $("whoami"),
    signOut: $("sign-out"),
    signin: $("signin"),
    signinForm: $("signin-form"),
    key: $("agent-key"),
    signinError: $("signin-error"),
    signinSubmit: $("signin-submit"),
    console: $("console"),
    queue: $("queue-list"),
    queueCount: $("queue-count"),
    queueEmpty: $("queue-empty"),
    placeholder: $("case-placeholder"),
    caseBody: $("case-body"),
    caseName: $("case-name"),
    caseSub: $("case-sub"),
    caseStatus: $("case-status"),
    caseError: $("case-error"),
    claim: $("claim"),
    release: $("release"),
    resolve: $("resolve"),
    rate: $("rate"),
    releasePanel: $("release-panel"),
    orders: $("orders"),
    orderPanel: $("order-panel"),
    orderPick: $("order-pick"),
    orderKind: $("order-kind"),
    orderLines: $("order-lines"),
    orderRefund: $("order-refund"),
    orderRefundRow: $("order-refund-row"),
    orderReason: $("order-reason"),
    orderReasonRow: $("order-reason-row"),
    orderResult: $("order-result"),
    orderHistory: $("order-history"),
    orderCancel: $("order-cancel"),
    releaseNote: $("release-note"),
    releaseCancel: $("release-cancel"),
    ratePanel: $("rate-panel"),
    rateCancel: $("rate-cancel"),
    packet: $("packet"),
    threadChannels: $("thread-channels"),
    timeline: $("timeline"),
    composer: $("composer"),
    context: $("composer-context"),
    replyText: $("reply-text"),
    send: $("send"),
    window: $("composer-window"),
    replyDelivery: $("reply-delivery"),
  };
  const KEY_STORAGE = "threadline-console-key";
  const AGENT_STORAGE = "threadline-console-agent";
  const QUEUE_STATUSES = ["queued", "claimed", "timed_out"];
  const PRIORITY_RANK = { urgent: 0, high: 1, normal: 2, low: 3 };
  const STATUS_LABEL = {
    queued: "Waiting",
    claimed: "Claimed",
    timed_out: "Timed out",
    released: "Back with the AI",
    resolved: "Resolved",
  };
  // A message's parts add up to the worst of their states (one failed part: the message failed).
  const DELIVERY_SEVERITY = ["dead", "failed", "queued", "sending", "sent", "delivered", "read"];

  const state = {
    key: sessionStorage.getItem(KEY_STORAGE) || "",
    agent: sessionStorage.getItem(AGENT_STORAGE) || "",
    queue: [], // HandoffOut[], as listed last
    fetchedAt: 0, // Date.now() when the queue was listed
    selected: null, // HandoffDetail of the open case
    profile: null,
    entries: [], // the open customer's timeline
    agentMessages: new Set(), // message ids sent by agents (from agent_reply events)
    deliveries: new Map(), // "message:<id>" -> { state, error }: the open customer's outbound messages' delivery
    deliveriesSeen: "", // what the delivery labels were last drawn from
    window: null, // the open case's WhatsApp window (null when the reply does not go on WhatsApp)
    unread: new Set(), // handoff ids with activity not looked at yet
    latest: null, // the handoff id with the newest activity
    flash: new Set(), // handoff ids whose activity arrived in the last poll: their rows flash once
    cursor: null, // the last handoff event id seen
    pollTimer: null,
    ticks: 0,
    busy: false,
  };

  // --- small helpers --------------------------------------------------------------------------------------

  const { el, icon } = window.ThreadlineDom;

  function channelLabel(channel) {
    return config.channels[channel] || channel || "—";
  }

  function humanize(value) {
    return String(value || "").replace(/_/g, " ");
  }

  function languageName(code) {
    try {
      return new Intl.DisplayNames(["en"], { type: "language" }).of(code) || code;
    } catch (error) {
      return code; // not a language code the browser knows: show it as given
    }
  }

  function money(value) {
    return "$" + Number(value).toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  }

  function clock(iso) {
    return new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function until(iso) {
    const today = new Date().toDateString() === new Date(iso).toDateString();
    return (today ? "" : "tomorrow ") + clock(iso); // a WhatsApp window closes within 24 hours
  }

  function duration(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    if (s < 60) return s + "s";
    const m = Math.floor(s / 60);
    if (m < 60) return m + "m " + String(s % 60).padStart(2, "0") + "s";
    const h = Math.floor(m / 60);
    if (h < 48) return h + "h " + String(m % 60).padStart(2, "0") + "m";
    return Math.floor(h / 24) + "d " + (h % 24) + "h";
  }

  function customerName(packet) {
    const customer = (packet && packet.customer) || {};
    if (customer.name) return customer.name;
    const handle = (customer.identities || [])[0];
    if (handle) return handle.slice(handle.indexOf(":") + 1);
    return customer.id || "Unknown customer";
  }

  // --- the API --------------------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  async function api(method, path, body, extra) {
    const headers = { Authorization: "Bearer " + state.key, Accept: "application/json", ...(extra || {}) };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(config.api + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: "no-store",
        credentials: "omit",
      });
    } catch (_) {
      throw new ApiError(0, "network", "The support API cannot be reached. Check your connection.");
    }
    let data = null;
    try {
      data = await response.json();
    } catch (_) {
      data = null;
    }
    if (!response.ok) {
      const error = (data && data.error) || {};
      throw new ApiError(response.status, error.code || "error", error.message || "HTTP " + response.status);
    }
    return data;
  }

  function queuePath() {
    return "/handoffs?" + QUEUE_STATUSES.map((s) => "status=" + s).join("&") + "&limit=500";
  }

  // --- signing in -----------------------------------------------------------------------------------------

  function showView(view) {
    els.body.dataset.view = view;
    els.signin.hidden = view !== "console" ? false : true;
    els.console.hidden = view !== "console";
    els.session.hidden = view !== "console";
  }

  async function signIn(key) {
    state.key = key;
    const queue = await api("GET", queuePath());
    sessionStorage.setItem(KEY_STORAGE, key);
    showView("console");
    setQueue(queue);
    renderWho();
    await startLive();
  }

  function signOut() {
    sessionStorage.removeItem(KEY_STORAGE);
    sessionStorage.removeItem(AGENT_STORAGE);
    clearTimeout(state.pollTimer);
    Object.assign(state, { key: "", agent: "", queue: [], selected: null, cursor: null, profile: null, entries: [] });
    state.unread.clear();
    closeCase();
    renderQueue();
    els.key.value = "";
    showView("signin");
    els.key.focus();
  }

  function renderWho() {
    els.whoami.replaceChildren(icon("person"), el("span", { text: state.agent || "Signed in" }));
  }

  function learnAgent(handoff) {
    if (handoff && handoff.assigned_agent && handoff.status === "claimed" && !state.agent) {
      state.agent = handoff.assigned_agent;
      sessionStorage.setItem(AGENT_STORAGE, state.agent);
      renderWho();
    }
  }

  els.signinForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = els.key.value.trim();
    if (!key) return;
    els.signinError.hidden = true;
    els.signinSubmit.disabled = true;
    try {
      await signIn(key);
    } catch (error) {
      state.key = "";
      els.signinError.textContent =
        error.status === 401 || error.status === 403 ? error.message : "Could not sign in: " + error.message;
      els.signinError.hidden = false;
    } finally {
      els.signinSubmit.disabled = false;
    }
  });
  els.signOut.addEventListener("click", signOut);

  // --- the queue ------------------------------------------------------------------------------------------

  function setQueue(queue) {
    state.queue = queue.slice().sort((a, b) => {
      const problems = Number(b.delivery_problems > 0) - Number(a.delivery_problems > 0);
      const rank = (PRIORITY_RANK[a.priority] ?? 9) - (PRIORITY_RANK[b.priority] ?? 9);
      return problems || rank || new Date(a.created_at) - new Date(b.created_at);
    });
    state.fetchedAt = Date.now();
    renderQueue();
  }

  async function refreshQueue() {
    setQueue(await api("GET", queuePath()));
  }

  function waitingSeconds(handoff) {
    const ticking = handoff.status === "queued" || handoff.status === "timed_out";
    return handoff.waiting_s + (ticking ? (Date.now() - state.fetchedAt) / 1000 : 0);
  }

  function slaText(handoff) {
    if (!handoff.sla_due_at) return { text: "No SLA", late: false };
    const left = (new Date(handoff.sla_due_at) - Date.now()) / 1000;
    if (left < 0) return { text: "SLA overdue " + duration(-left), late: true };
    return { text: "SLA in " + duration(left), late: left < 600 };
  }

  function deliveryBadge(handoff, testid) {
    const n = handoff.delivery_problems || 0;
    if (!n) return null;
    return el("span", { class: "badge badge--delivery", "data-testid": testid, text: "delivery failed",
      title: n + (n === 1 ? " message" : " messages") + " to the customer failed: reach them another way" });
  }

  function renderQueue() {
    const items = state.queue.map((handoff) => {
      const packet = handoff.packet || {};
      const stall = (packet.stall && packet.stall.type) || "";
      const selected = state.selected && state.selected.id === handoff.id;
      const sla = slaText(handoff);
      const item = el(
        "li",
        {
          class: "queue-item" + (state.unread.has(handoff.id) ? " is-unread" : "") +
            (state.latest === handoff.id ? " is-latest" : "") +
            (state.flash.has(handoff.id) && !selected ? " is-fresh" : ""),
          "data-testid": "queue-item",
          "data-handoff": handoff.id,
          "data-status": handoff.status,
        },
        el(
          "button",
          { type: "button", class: "queue-button", "aria-current": selected ? "true" : null },
          el(
            "span",
            { class: "queue-row" },
            el("span", { class: "badge badge--" + handoff.priority, "data-testid": "queue-priority", text: handoff.priority }),
            el("span", { class: "queue-name", "data-testid": "queue-customer", text: customerName(packet) }),
            deliveryBadge(handoff, "queue-delivery"),
            el("span", { class: "chan chan--" + (handoff.channel || "none"), title: channelLabel(handoff.channel) },
              icon(handoff.channel || "web")),
          ),
          el(
            "span",
            { class: "queue-row queue-row--meta" },
            el("span", { class: "stall", "data-testid": "queue-stall", text: humanize(stall) }),
            el("span", { class: "status status--" + handoff.status, "data-testid": "queue-status",
              text: handoff.status === "claimed" && handoff.assigned_agent
                ? (handoff.assigned_agent === state.agent ? "Mine" : humanize(handoff.assigned_agent))
                : STATUS_LABEL[handoff.status] || handoff.status }),
          ),
          el(
            "span",
            { class: "queue-row queue-row--meta" },
            el("span", { class: "wait", "data-testid": "queue-waiting", "data-waiting": handoff.id },
              icon("clock"), el("span", { text: duration(waitingSeconds(handoff)) })),
            el("span", { class: "sla" + (sla.late ? " is-late" : ""), "data-sla": handoff.id, text: sla.text }),
          ),
        ),
      );
      item.querySelector("button").addEventListener("click", () => openCase(handoff.id));
      return item;
    });
    els.queue.replaceChildren(...items);
    state.flash.clear();
    els.queueCount.textContent = String(state.queue.length);
    els.queueEmpty.hidden = state.queue.length > 0;
  }

  function tick() {
    for (const handoff of state.queue) {
      const wait = els.queue.querySelector('[data-waiting="' + handoff.id + '"] span');
      if (wait) wait.textContent = duration(waitingSeconds(handoff));
      const slaNode = els.queue.querySelector('[data-sla="' + handoff.id + '"]');
      if (slaNode) {
        const sla = slaText(handoff);
        slaNode.textContent = sla.text;
        slaNode.classList.toggle("is-late", sla.late);
      }
    }
    if (state.selected) renderStatus();
  }

  // --- the open case --------------------------------------------------------------------------------------

  function closeCase() {
    state.selected = null;
    els.caseBody.hidden = true;
    els.placeholder.hidden = false;
  }

  function showError(message) {
    els.caseError.textContent = message || "";
    els.caseError.hidden = !message;
  }

  async function openCase(handoffId) {
    showError("");
    state.unread.delete(handoffId);
    if (!state.selected || state.selected.id !== handoffId) {
      els.releasePanel.hidden = true;
      els.ratePanel.hidden = true;
      els.orderPanel.hidden = true;
      els.replyText.value = "";
      els.replyDelivery.textContent = "";
      state.entries = [];
      state.profile = null;
      state.deliveries = new Map();
      state.deliveriesSeen = "";
      state.window = null;
    }
    try {
      const detail = await api("GET", "/handoffs/" + encodeURIComponent(handoffId));
      state.selected = detail;
      learnAgent(detail);
      noteAgentMessages(detail.events);
      els.placeholder.hidden = true;
      els.caseBody.hidden = false;
      els.caseBody.dataset.handoff = detail.id;
      renderCase();
      renderQueue();
      await Promise.all([loadTimeline(), loadProfile(), loadDeliveries()]);
    } catch (error) {
      showError(error.message);
    }
  }

  function noteAgentMessages(events) {
    for (const event of events || []) {
      if (event.kind === "agent_reply" && event.payload && event.payload.message_id !== undefined) {
        state.agentMessages.add("message:" + event.payload.message_id);
      }
    }
  }

  async function loadProfile() {
    if (!state.selected) return;
    try {
      state.profile = await api("GET", "/customers/" + encodeURIComponent(state.selected.customer_id));
    } catch (_) {
      state.profile = null;
    }
    renderHead();
  }

  async function loadTimeline() {
    if (!state.selected) return;
    const entries = await api("GET", "/customers/" + encodeURIComponent(state.selected.customer_id) + "/timeline?limit=300");
    if (!state.selected) return;
    const changed = entries.length !== state.entries.length ||
      (entries.length && entries[entries.length - 1].ref !== state.entries[state.entries.length - 1].ref);
    state.entries = entries;
    if (changed) renderTimeline();
  }

  async function loadDeliveries() {
    if (!state.selected) return;
    const id = state.selected.id;
    const found = await api("GET", "/handoffs/" + encodeURIComponent(id) + "/deliveries");
    if (!state.selected || state.selected.id !== id) return;
    const byMessage = new Map();
    for (const d of found.deliveries) {
      if (d.message_id === null) continue;
      const ref = "message:" + d.message_id;
      const shown = d.state === "delivered" && d.read_at ? "read" : d.state;
      const known = byMessage.get(ref);
      if (!known || DELIVERY_SEVERITY.indexOf(shown) < DELIVERY_SEVERITY.indexOf(known.state)) {
        byMessage.set(ref, { state: shown, error: d.last_error });
      }
    }
    state.window = found.window;
    const seen = JSON.stringify([...byMessage]);
    if (seen !== state.deliveriesSeen) {
      state.deliveries = byMessage;
      state.deliveriesSeen = seen;
      renderTimeline();
    } else {
      renderComposer();
    }
  }

  function mine() {
    const c = state.selected;
    return !!c && c.status === "claimed" && !!c.assigned_agent && c.assigned_agent === state.agent;
  }

  function renderCase() {
    renderHead();
    renderStatus();
    renderPacket();
    renderComposer();
  }

  function renderWindow() {
    const w = state.window;
    els.window.hidden = !w;
    if (!w) return;
    els.window.dataset.applies = w.open ? "text" : w.template ? "template" : "none";
    els.window.replaceChildren(icon(w.open ? "clock" : "alert"), el("span", {
      text: w.open
        ? "Free-form reply: window open until " + until(w.closes_at)
        : w.template
          ? "Outside the 24-hour window: your reply goes as the template " + w.template
          : "Outside the window and no template configured: the reply cannot be sent",
    }));
  }

  function renderHead() {
    const c = state.selected;
    if (!c) return;
    const packet = c.packet || {};
    const customer = packet.customer || {};
    els.caseName.textContent = customerName(packet);
    const bits = [];
    if (customer.provisional) bits.push("New contact");
    if (customer.verification_level) bits.push(humanize(customer.verification_level));
    if (customer.tier) bits.push(customer.tier.toUpperCase());
    const profile = state.profile;
    const orders = profile ? profile.orders.length : customer.order_count;
    if (orders) bits.push(orders + (orders === 1 ? " order" : " orders"));
    // The customer page's figure, live; the packet's is the same rule at handoff time (core/standing.py).
    const value = profile ? profile.lifetime_value : customer.lifetime_value;
    if (Number(value) > 0) bits.push("LTV " + money(value));
    if (profile) {
      const handles = profile.identities.filter((i) => i.active).map((i) => i.handle_value);
      if (handles.length) bits.push(handles.join(" · "));
    } else if ((customer.identities || []).length) {
      bits.push(customer.identities.map((i) => i.slice(i.indexOf(":") + 1)).join(" · "));
    }
    els.caseSub.textContent = bits.join("  ·  ");
  }

  function renderStatus() {
    const c = state.selected;
    if (!c) return;
    const listed = state.queue.find((h) => h.id === c.id);
    const waiting = listed ? waitingSeconds(listed) : c.waiting_s;
    const sla = slaText(listed || c);
    const owner = c.status === "claimed"
      ? (mine() ? "You have this case" : "Claimed by " + (c.assigned_agent || "another agent"))
      : STATUS_LABEL[c.status] || c.status;
    const pills = [
      el("span", { class: "badge badge--" + c.priority, text: c.priority }),
      el("span", { class: "status status--" + c.status, "data-testid": "case-status", text: owner }),
      deliveryBadge(c, "case-delivery"),
      el("span", { class: "pill", title: "Waited for an agent" }, icon("clock"), el("span", { text: duration(waiting) })),
      c.status === "queued" || c.status === "timed_out" || c.status === "claimed"
        ? el("span", { class: "pill" + (sla.late ? " is-late" : ""), text: sla.text })
        : null,
    ];
    els.caseStatus.replaceChildren(...pills.filter(Boolean));
    const open = ["queued", "claimed", "timed_out"].includes(c.status);
    const claimedByOther = c.status === "claimed" && !mine() && !!state.agent;
    els.claim.hidden = mine() || !open;
    els.claim.disabled = state.busy || claimedByOther;
    els.release.disabled = state.busy || !open || claimedByOther;
    els.resolve.disabled = state.busy || !open || claimedByOther;
    els.rate.disabled = state.busy;
    els.rate.textContent = c.rating ? "Rated " + c.rating + "/5" : "Rate packet";
  }

  function section(title, testid, ...children) {
    return el("section", { class: "card", "data-testid": testid }, el("h3", { class: "panel-title", text: title }), ...children);
  }

  function list(items, testid, cls) {
    return el("ul", { class: "list " + (cls || ""), "data-testid": testid },
      ...items.map((item) => el("li", { text: item })));
  }

  function sparkline(values) {
    const ns = "http://www.w3.org/2000/svg";
    const width = 120, height = 28;
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("class", "spark");
    svg.setAttribute("viewBox", "0 0 " + width + " " + height);
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", "Sentiment over the recent turns: " + values.map((v) => v.toFixed(2)).join(", "));
    const base = document.createElementNS(ns, "line");
    base.setAttribute("x1", "0");
    base.setAttribute("x2", String(width));
    base.setAttribute("y1", String(height / 2));
    base.setAttribute("y2", String(height / 2));
    base.setAttribute("class", "spark-zero");
    svg.append(base);
    const points = values.map((v, i) => {
      const x = values.length === 1 ? width / 2 : 4 + (i * (width - 8)) / (values.length - 1);
      const y = height / 2 - (Math.max(-1, Math.min(1, v)) * (height / 2 - 3));
      return [x, y];
    });
    if (points.length > 1) {
      const line = document.createElementNS(ns, "polyline");
      line.setAttribute("points", points.map((p) => p.join(",")).join(" "));
      line.setAttribute("class", "spark-line");
      svg.append(line);
    }
    for (const [x, y] of points) {
      const dot = document.createElementNS(ns, "circle");
      dot.setAttribute("cx", String(x));
      dot.setAttribute("cy", String(y));
      dot.setAttribute("r", "2.6");
      dot.setAttribute("class", "spark-dot");
      svg.append(dot);
    }
    return svg;
  }

  function renderPacket() {
    const c = state.selected;
    const p = c.packet || {};
    const cards = [];
    const [wrote, wants] = String(p.goal || "").split("\n");
    cards.push(
      el("section", { class: "card card--goal", "data-testid": "packet-goal" },
        el("h3", { class: "panel-title", text: "Summary" }),
        el("p", { class: "goal-main", text: wants || wrote || "—" }),
        wants ? el("p", { class: "goal-quote", text: wrote }) : null,
        el("p", { class: "goal-meta" },
          el("span", { class: "tag", text: "Intent: " + humanize(p.intent || "unknown") +
            (typeof p.intent_confidence === "number" ? " (" + Math.round(p.intent_confidence * 100) + "%)" : "") }),
          p.language ? el("span", { class: "tag", "data-testid": "packet-language", lang: p.language,
            title: "The language the customer writes in: reply in it", text: "Language: " + languageName(p.language) }) : null,
          ...(p.channels_in_episode || []).map((ch) =>
            el("span", { class: "tag tag--" + ch }, icon(ch), el("span", { text: channelLabel(ch) })))),
      ),
    );
    const stall = p.stall || {};
    cards.push(
      el("section", { class: "card card--stall", "data-testid": "packet-stall" },
        el("h3", { class: "panel-title" }, icon("alert"), el("span", { text: "Where the AI stalled" })),
        el("p", { class: "stall-type", "data-testid": "stall-type", text: stall.type || "unknown" }),
        stall.detail ? el("p", { class: "stall-detail", text: stall.detail }) : null,
        ...(stall.evidence || []).map((quote) => el("blockquote", { class: "evidence", text: quote })),
      ),
    );
    const pending = p.pending_action;
    if (pending) {
      cards.push(
        el("section", { class: "card card--pending", "data-testid": "packet-pending-action" },
          el("h3", { class: "panel-title" }, icon("clock"), el("span", { text: "Pending order action" })),
          el("p", { class: "pending-what", text: humanize(pending.kind) + (pending.order_id ? " · " + pending.order_id : "") }),
          el("p", { class: "pending-text", text: pending.text }),
          el("p", { class: "pending-note", text: "Not done: the customer has not said yes, and it will not run on its own. " +
            "If they still want it, run it from Order actions." })),
      );
    }
    const facts = Object.entries(p.facts || {});
    cards.push(
      section("Known facts — don't re-ask", "packet-facts",
        facts.length
          ? el("dl", { class: "facts" }, ...facts.flatMap(([k, v]) => [el("dt", { text: humanize(k) }), el("dd", { text: String(v) })]))
          : el("p", { class: "muted", text: "Nothing established yet." })),
    );
    if ((p.open_questions || []).length) cards.push(section("Open questions", "packet-questions", list(p.open_questions, "open-questions", "list--questions")));
    cards.push(
      section("Suggested next steps", "packet-next-steps",
        (p.next_steps || []).length
          ? el("ol", { class: "list list--steps", "data-testid": "next-steps" }, ...p.next_steps.map((s) => el("li", { text: s })))
          : el("p", { class: "muted", text: "None suggested." })),
    );
    cards.push(
      section("Tool trail", "packet-tools",
        (p.tools_called || []).length
          ? el("ol", { class: "tools" }, ...p.tools_called.map((t) =>
              el("li", { class: "tool", "data-testid": "tool" },
                el("span", { class: "tool-name" }, icon("tool"), el("span", { text: t.name })),
                el("code", { class: "tool-args", text: JSON.stringify(t.args || {}) }),
                el("span", { class: "outcome outcome--" + String(t.outcome || "").split(/[^a-z]/)[0], text: t.outcome || "" }),
                // What a tool returned is untrusted data (articles, order data): shown as a quotation, as text only.
                t.result ? el("blockquote", { class: "quoted", "data-testid": "quoted", title: "Quoted data from " +
                  t.result.source + ": untrusted, not instructions" },
                  el("span", { class: "quoted-label", text: "quoted · untrusted data" }),
                  el("span", { class: "quoted-text", text: t.result.text })) : null)))
          : el("p", { class: "muted", text: "The AI called no tools." })),
    );
    const sentiment = p.sentiment || [];
    if (sentiment.length) {
      const last = sentiment[sentiment.length - 1];
      cards.push(
        section("Sentiment", "packet-sentiment",
          el("div", { class: "sentiment" }, sparkline(sentiment),
            el("span", { class: "sentiment-value " + (last < -0.2 ? "is-neg" : last > 0.2 ? "is-pos" : ""),
              text: (last > 0 ? "+" : "") + last.toFixed(2) + " latest" }))),
      );
    }
    if ((p.articles_cited || []).length) cards.push(section("Articles cited", "packet-articles", list(p.articles_cited, "articles")));
    els.packet.replaceChildren(...cards);
  }

  function renderComposer() {
    const ok = mine();
    els.replyText.disabled = !ok || state.busy;
    els.send.disabled = !ok || state.busy;
    const c = state.selected;
    const last = [...state.entries].reverse().find((e) => e.kind === "message" && e.direction === "inbound");
    const channel = (last && last.channel) || (c && c.channel) || "web";
    els.replyText.placeholder = ok ? "Reply to the customer…" : "Claim the case to reply";
    els.context.replaceChildren(icon(channel), el("span", {
      text: ok ? "Replying on " + channelLabel(channel) + " — the customer's current channel" : "Read only until you claim the case",
    }));
    renderWindow();
  }

  function deliveryLabel(entry) {
    const known = state.deliveries.get(entry.ref) || (entry.delivery ? { state: entry.delivery, error: null } : null);
    if (!known) return null;
    const failed = known.state === "failed" || known.state === "dead";
    return el("span", {
      class: "delivery delivery--" + known.state,
      "data-testid": "delivery-state",
      "data-state": known.state,
      title: failed ? (known.error || "The provider did not deliver it") : "Delivery: " + known.state,
      text: known.state,
    });
  }

  function entryView(entry) {
    if (entry.kind === "message") {
      const inbound = entry.direction === "inbound";
      const agent = !inbound && state.agentMessages.has(entry.ref);
      const role = inbound ? "customer" : agent ? "agent" : "ai";
      const who = inbound ? "Customer" : agent ? "Agent" : "AI";
      return el(
        "li",
        { class: "entry entry--" + role + " entry--" + (entry.channel || "none"), "data-testid": "timeline-message",
          "data-role": role, "data-channel": entry.channel, "data-ref": entry.ref },
        el("div", { class: "entry-meta" }, icon(entry.channel || "web"),
          el("span", { class: "channel-name", text: channelLabel(entry.channel) }),
          el("span", { text: "· " + who + " · " + clock(entry.at) }),
          inbound ? null : deliveryLabel(entry)),
        el("div", { class: "bubble text", text: entry.text || "" }),
      );
    }
    const d = entry.detail || {};
    let text;
    if (entry.kind === "handoff") return null; // the handoff_created event says it, with the stall
    if (entry.kind === "identity") {
      text = "Identity " + humanize(d.kind) + (d.handle_type ? ": " + d.handle_type : "") + (d.level ? " (" + humanize(d.level) + ")" : "");
    } else if (d.type === "turn") {
      if (!(d.tools || []).length) return null;
      text = "AI used " + d.tools.join(", ");
    } else {
      text = humanize(d.type || entry.kind);
      if (d.stall) text += " · " + humanize(d.stall);
      if (d.agent) text += " · " + d.agent;
      if (d.note) text += " · “" + d.note + "”";
    }
    return el("li", { class: "sys", "data-testid": "timeline-event", "data-ref": entry.ref },
      el("span", { text: text + " · " + clock(entry.at) }));
  }

  function renderTimeline() {
    const nearBottom = els.timeline.scrollHeight - els.timeline.scrollTop - els.timeline.clientHeight < 80;
    const views = [];
    let channel = null;
    for (const entry of state.entries) {
      if (entry.kind === "message" && entry.channel && entry.channel !== channel) {
        if (channel !== null) {
          views.push(el("li", { class: "divider", "data-testid": "channel-divider" }, icon(entry.channel),
            el("span", { text: "Switched to " + channelLabel(entry.channel) })));
        }
        channel = entry.channel;
      }
      const view = entryView(entry);
      if (view) views.push(view);
    }
    els.timeline.replaceChildren(...views);
    const channels = [...new Set(state.entries.filter((e) => e.kind === "message" && e.channel).map((e) => e.channel))];
    els.threadChannels.replaceChildren(...channels.map((ch) => el("span", { class: "tag tag--" + ch }, icon(ch), el("span", { text: channelLabel(ch) }))));
    if (nearBottom || views.length < 40) els.timeline.scrollTop = els.timeline.scrollHeight;
    renderComposer();
  }

  // --- actions --------------------------------------------------------------------------------------------

  async function act(work) {
    if (state.busy || !state.selected) return;
    state.busy = true;
    showError("");
    renderStatus();
    renderComposer();
    try {
      await work(state.selected.id);
      await refreshQueue().catch(() => undefined);
      await openCase(state.selected.id);
    } catch (error) {
      showError(error.message);
      if (error.status === 401) signOut();
    } finally {
      state.busy = false;
      if (state.selected) {
        renderStatus();
        renderComposer();
      }
    }
  }

  const path = (id, action) => "/handoffs/" + encodeURIComponent(id) + "/" + action;

  els.claim.addEventListener("click", () =>
    act(async (id) => {
      const claimed = await api("POST", path(id, "claim"));
      learnAgent(claimed);
      setTimeout(() => els.replyText.focus(), 0);
    }));
  els.resolve.addEventListener("click", () => act((id) => api("POST", path(id, "resolve"))));
  els.release.addEventListener("click", () => {
    els.ratePanel.hidden = true;
    els.releasePanel.hidden = !els.releasePanel.hidden;
    if (!els.releasePanel.hidden) els.releaseNote.focus();
  });
  els.releaseCancel.addEventListener("click", () => { els.releasePanel.hidden = true; });
  els.releasePanel.addEventListener("submit", (event) => {
    event.preventDefault();
    const note = els.releaseNote.value.trim();
    act(async (id) => {
      await api("POST", path(id, "release"), { note });
      els.releasePanel.hidden = true;
      els.releaseNote.value = "";
    });
  });
  els.rate.addEventListener("click", () => {
    els.releasePanel.hidden = true;
    els.ratePanel.hidden = !els.ratePanel.hidden;
  });
  els.rateCancel.addEventListener("click", () => { els.ratePanel.hidden = true; });
  els.ratePanel.addEventListener("submit", (event) => {
    event.preventDefault();
    const form = new FormData(els.ratePanel);
    const usefulness = Number(form.get("usefulness"));
    if (!usefulness) return;
    act(async (id) => {
      await api("POST", path(id, "rate"), { usefulness, missing: form.getAll("missing"), wrong: form.getAll("wrong") });
      els.ratePanel.hidden = true;
      els.ratePanel.reset();
    });
  });

  // --- order actions -------------------------------------------------------------------------------------

  let actionKey = "";
  const ACTION_DONE = { return: "Return", cancel: "Cancellation", exchange: "Exchange" };

  function selectedOrder() {
    const orders = (state.profile && state.profile.orders) || [];
    return orders.find((o) => o.id === els.orderPick.value) || null;
  }

  function renderOrderForm() {
    const order = selectedOrder();
    const returning = els.orderKind.value === "return";
    els.orderLines.replaceChildren();
    els.orderLines.hidden = !returning;
    els.orderRefundRow.hidden = !returning;
    els.orderReasonRow.hidden = returning;
    if (!order) return;
    for (const line of order.lines || []) {
      const options = Object.values(line.options || {}).join(", ");
      els.orderLines.append(el("label", {},
        el("input", { type: "checkbox", name: "item", value: line.item_id, "data-testid": "order-line-" + line.item_id }),
        line.name + (options ? " (" + options + ")" : "") + " — $" + line.price));
    }
    els.orderRefund.replaceChildren();
    const methods = (state.profile && state.profile.payment_methods) || {};
    if (order.paid_with) {
      els.orderRefund.append(el("option", { value: order.paid_with, text: "Original: " + (methods[order.paid_with] || order.paid_with) }));
    }
    for (const [id, words] of Object.entries(methods)) {
      if (id !== order.paid_with && id.startsWith("gift_card")) els.orderRefund.append(el("option", { value: id, text: words }));
    }
  }

  async function loadOrderHistory() {
    if (!state.selected) return;
    const actions = await api("GET", "/customers/" + encodeURIComponent(state.selected.customer_id) + "/actions");
    els.orderHistory.replaceChildren(...actions.map((a) => el("li", {
      text: clock(a.created_at) + " · " + humanize(a.kind) + " " + (a.order_id || "") + " · " + a.outcome +
        " · " + (a.actor === "customer" ? "customer (confirmed)" : a.actor.replace("agent:", "agent ")),
    })));
  }

  function openOrders() {
    const orders = (state.profile && state.profile.orders) || [];
    els.orderPick.replaceChildren(...orders.map((o) => el("option", {
      value: o.id, text: o.id + " · " + humanize(o.status) + " · $" + o.total,
    })));
    els.orderResult.hidden = true;
    actionKey = (crypto.randomUUID && crypto.randomUUID()) || String(Date.now());
    renderOrderForm();
    loadOrderHistory().catch(() => undefined);
  }

  els.orders.addEventListener("click", () => {
    els.releasePanel.hidden = true;
    els.ratePanel.hidden = true;
    els.orderPanel.hidden = !els.orderPanel.hidden;
    if (!els.orderPanel.hidden) openOrders();
  });
  els.orderCancel.addEventListener("click", () => { els.orderPanel.hidden = true; });
  els.orderPick.addEventListener("change", renderOrderForm);
  els.orderKind.addEventListener("change", renderOrderForm);
  els.orderPanel.addEventListener("submit", async (event) => {
    event.preventDefault();
    const order = selectedOrder();
    if (!order || !state.selected || !mine()) {
      showError("Claim the case before acting on its orders.");
      return;
    }
    const body = els.orderKind.value === "cancel"
      ? { kind: "cancel", order_id: order.id, reason: els.orderReason.value }
      : {
          kind: "return",
          order_id: order.id,
          item_ids: [...els.orderLines.querySelectorAll("input[name=item]:checked")].map((i) => i.value),
          payment_method_id: els.orderRefund.value,
        };
    if (body.kind === "return" && !body.item_ids.length) {
      showError("Pick at least one item to return.");
      return;
    }
    showError("");
    try {
      const record = await api("POST", path(state.selected.id, "actions"), body, { "Idempotency-Key": actionKey });
      actionKey = (crypto.randomUUID && crypto.randomUUID()) || String(Date.now());
      els.orderResult.dataset.outcome = record.outcome;
      els.orderResult.textContent = record.outcome === "done"
        ? (ACTION_DONE[record.kind] || humanize(record.kind)) + " done for " + record.order_id + ": now " +
          record.after.status + "."
        : "Refused: " + record.detail.message;
      els.orderResult.hidden = false;
      await loadProfile();
      renderOrderForm();
      await loadOrderHistory();
    } catch (error) {
      showError(error.message);
    }
  });

  // One key per draft: a double click or a retry after a network error sends the same key, so the customer gets the
  // message once; a new draft, or the same words sent again after a success, gets a new key.
  let replyKey = "";
  let replyKeyText = null;
  els.composer.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = els.replyText.value.trim();
    if (!text || !mine()) return;
    if (text !== replyKeyText) {
      replyKey = (crypto.randomUUID && crypto.randomUUID()) || String(Date.now()) + Math.random();
      replyKeyText = text;
    }
    const key = replyKey;
    act(async (id) => {
      const sent = await api("POST", path(id, "reply"), { text }, { "Idempotency-Key": key });
      state.agentMessages.add("message:" + sent.message_id);
      if (replyKey === key) replyKeyText = null;
      els.replyText.value = "";
      els.replyDelivery.textContent = sent.delivery;
    });
  });
  els.replyText.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      els.composer.requestSubmit();
    }
  });

  // --- live updates ---------------------------------------------------------------------------------------

  function setLive(stateName, text) {
    els.live.dataset.state = stateName;
    els.liveText.textContent = text;
  }

  async function startLive() {
    clearTimeout(state.pollTimer);
    if (state.cursor === null) {
      // Start from now: skim to the newest event id.
      let cursor = 0;
      for (;;) {
        const events = await api("GET", "/handoffs/events?since=" + cursor + "&limit=1000");
        if (events.length) cursor = events[events.length - 1].id;
        if (events.length < 1000) break;
      }
      state.cursor = cursor;
    }
    setLive("live", "Live");
    state.pollTimer = setTimeout(poll, config.pollMs);
  }

  async function poll() {
    if (!state.key) return;
    try {
      const events = await api("GET", "/handoffs/events?since=" + state.cursor + "&limit=500");
      let touchedOpen = false;
      for (const event of events) {
        state.cursor = Math.max(state.cursor, event.id);
        state.latest = event.handoff_id;
        state.flash.add(event.handoff_id);
        if (state.selected && event.handoff_id === state.selected.id) touchedOpen = true;
        else if (event.kind !== "rated") state.unread.add(event.handoff_id);
        if (event.kind === "agent_reply" && event.payload && event.payload.message_id !== undefined) {
          state.agentMessages.add("message:" + event.payload.message_id);
        }
      }
      if (events.length) await refreshQueue();
      state.ticks += 1;
      if (state.selected && !state.busy) {
        if (touchedOpen) await openCase(state.selected.id);
        // The AI's turns after a release log no handoff events, and neither do providers' delivery reports.
        else if (state.ticks % 3 === 0) await Promise.all([loadTimeline(), loadDeliveries()]);
      }
      setLive("live", "Live · updated " + new Date().toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" }));
    } catch (error) {
      if (error.status === 401 || error.status === 403) {
        signOut();
        els.signinError.textContent = error.message;
        els.signinError.hidden = false;
        return;
      }
      setLive("down", "Reconnecting…");
    }
    state.pollTimer = setTimeout(poll, config.pollMs);
  }

  // --- start ----------------------------------------------------------------------------------------------

  setInterval(tick, 1000);
  showView("signin");
  (async () => {
    if (state.key) {
      try {
        await signIn(state.key);
      } catch (error) {
        sessionStorage.removeItem(KEY_STORAGE);
        state.key = "";
        els.signinError.textContent = error.message;
        els.signinError.hidden = false;
        showView("signin");
      }
    }
    els.body.dataset.ready = "true";
  })();
})();
