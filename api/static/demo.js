// The /demo chat page: channel tabs, identity presets, one timeline across channels. No dependencies.
// Everything customer- or model-written goes into the page through textContent, never as HTML.
// Once the page has spoken, it polls for what reaches the customer outside its own turns: a support agent's replies
// from the console, the desk's notices, and who answers now (the AI, the queue or a person).
"use strict";

(function () {
  const config = JSON.parse(document.getElementById("demo-config").textContent);
  const $ = (id) => document.getElementById(id);
  const els = {
    tabs: Array.from(document.querySelectorAll('[role="tab"][data-channel]')),
    identity: $("identity"),
    hint: $("identity-hint"),
    phoneField: $("phone-field"),
    phone: $("phone"),
    timeline: $("timeline"),
    welcome: $("welcome"),
    banner: $("handoff-banner"),
    bannerText: $("handoff-banner-text"),
    form: $("composer"),
    text: $("text"),
    send: $("send"),
    context: $("composer-context"),
    counter: $("counter"),
    suggestions: $("suggestions"),
    reset: $("reset"),
    guide: $("guide"),
  };
  const CHANNEL_LABEL = Object.fromEntries(config.channels.map((c) => [c.id, c.label]));
  const PLACEHOLDER = {
    web: "Message the store…",
    sms: "Text message",
    email: "Write your email…",
    voice: "What you say on the call…",
  };
  const presets = new Map(config.presets.map((p) => [p.id, p]));
  const STORAGE_KEY = "threadline-demo";

  function randomId() {
    const bytes = new Uint8Array(12);
    crypto.getRandomValues(bytes); // works on plain http too, unlike crypto.randomUUID
    return "visitor-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function load() {
    try {
      const saved = JSON.parse(sessionStorage.getItem(STORAGE_KEY) || "null");
      if (saved && typeof saved.visitorId === "string" && Array.isArray(saved.entries)) return saved;
    } catch (_) {
      /* a fresh start */
    }
    return null;
  }

  const state = Object.assign(
    {
      visitorId: randomId(),
      channel: "web",
      identity: "visitor",
      lastIdentity: {}, // per channel: the identity chosen last time on it
      phone: config.defaultPhone,
      owner: "ai",
      entries: [],
      speakers: [], // {channel, identity, phone}: whom the page spoke as, the latest first (what it polls for)
      cursor: null, // the last message id of the conversations polled so far
    },
    load() || {},
  );
  let busy = false;
  let sends = 0; // counts sends, so a poll that overlapped one does not overrule the owner the send reported
  const BANNER = {
    queue: "Waiting for a person from our team — the assistant is silent",
    human: "A person from our team has the case — the assistant is silent",
  };

  function save() {
    try {
      sessionStorage.setItem(STORAGE_KEY, JSON.stringify({ ...state, entries: state.entries.slice(-200) }));
    } catch (_) {
      /* storage full or disabled: the page still works */
    }
  }

  // --- small DOM helpers ----------------------------------------------------------------------------------

  const { el, icon } = window.ThreadlineDom;

  function clock(iso) {
    return new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  // --- controls -------------------------------------------------------------------------------------------

  function presetsFor(channel) {
    return config.presets.filter((p) => p.channels.includes(channel));
  }

  function renderControls() {
    for (const tab of els.tabs) {
      const selected = tab.dataset.channel === state.channel;
      tab.setAttribute("aria-selected", String(selected));
      tab.tabIndex = selected ? 0 : -1;
    }
    const options = presetsFor(state.channel);
    if (!options.some((p) => p.id === state.identity)) {
      const remembered = state.lastIdentity[state.channel];
      state.identity = options.some((p) => p.id === remembered) ? remembered : options[0].id;
    }
    els.identity.replaceChildren(...options.map((p) => el("option", { value: p.id, text: p.label })));
    els.identity.value = state.identity;
    const preset = presets.get(state.identity);
    els.hint.textContent = preset.hint || "";
    els.phoneField.hidden = preset.kind !== "phone";
    els.phone.value = state.phone;

    els.context.replaceChildren(icon(state.channel), document.createTextNode(contextLabel(preset)));
    els.text.placeholder = PLACEHOLDER[state.channel];
    els.suggestions.replaceChildren(
      ...(config.suggestions[state.channel] || []).map((s) =>
        el("button", { type: "button", class: "suggestion", "data-testid": "suggestion", text: s }),
      ),
    );
    showOwner();
    updateCounter();
  }

  function showOwner() {
    els.banner.hidden = state.owner === "ai";
    els.bannerText.textContent = BANNER[state.owner] || BANNER.human;
  }

  function contextLabel(preset) {
    const label = CHANNEL_LABEL[state.channel];
    if (preset.kind === "phone") return `${label} from ${state.phone || config.defaultPhone}`;
    if (preset.kind === "email") return `${label} from ${preset.email}`;
    return `${label} · ${preset.label}`;
  }

  function selectChannel(channel, focus) {
    state.channel = channel;
    renderControls();
    save();
    if (focus) els.tabs.find((t) => t.dataset.channel === channel).focus();
  }

  function updateCounter() {
    const n = els.text.value.length;
    els.counter.textContent = n > config.maxChars * 0.8 ? `${n} / ${config.maxChars}` : "";
    els.counter.classList.toggle("over", n > config.maxChars);
  }

  function autosize() {
    els.text.style.height = "auto";
    els.text.style.height = els.text.scrollHeight + "px";
  }

  // --- the timeline ---------------------------------------------------------------------------------------

  function meta(entry, who, person) {
    return el(
      "div",
      { class: "entry-meta" },
      icon(entry.channel),
      el("span", { class: "channel-name", text: CHANNEL_LABEL[entry.channel] }),
      el("span", { text: "·" }),
      person && icon("person"),
      el("span", { class: "entry-who", "data-testid": "who", text: who }),
      el("span", { text: `· ${clock(entry.at)}` }),
    );
  }

  const TEXT_ID = { assistant: "reply", agent: "agent-reply", notice: "notice", customer: "said" };
  const SPEAKER = { assistant: "Assistant", agent: "Support team", notice: "Notice", customer: "Caller" };

  function body(entry, role) {
    const text = el("div", { class: "text", "data-testid": TEXT_ID[role], text: entry.text });
    const ours = role !== "customer";
    if (entry.channel === "email") {
      const from = role === "agent" ? `Support team, ${config.storeName}` : `Customer Care, ${config.storeName}`;
      const head = el("dl", { class: "email-head" });
      const rows = ours ? [["From", from], ["To", entry.sender || "You"]] : [["From", entry.sender], ["To", "Customer Care"]];
      if (entry.subject || role === "assistant" || role === "customer") rows.push(["Subject", entry.subject || "", "subject"]);
      for (const [k, v, cls] of rows) head.append(el("dt", { text: k }), el("dd", { class: cls, text: v }));
      return el("article", { class: "email-card" }, head, text);
    }
    if (entry.channel === "voice") {
      return el("div", { class: "transcript" }, el("span", { class: "speaker", text: SPEAKER[role] }), text);
    }
    return el("div", { class: "bubble" }, text);
  }

  function chips(tools) {
    if (!tools || !tools.length) return null;
    return el(
      "ul",
      { class: "chips", "aria-label": "Tools the assistant used" },
      ...tools.map((tool) => {
        const first = Object.values(tool.args || {})[0];
        const arg = typeof first === "string" && first.length <= 24 ? first : null;
        return el(
          "li",
          { class: "chip", "data-testid": "tool-chip", title: JSON.stringify(tool.args || {}) },
          icon("tool"),
          el("span", { text: tool.name }),
          arg && el("span", { class: "chip-arg", text: arg }),
        );
      }),
    );
  }

  // What the timeline has shown so far: where the customer last wrote from, and whom replies were filed under.
  let shown = { place: null, name: undefined };

  function renderEntry(entry) {
    const nodes = [];
    if (entry.role === "customer") {
      const place = `${entry.channel}|${entry.sender}`;
      if (shown.place !== place) {
        shown.place = place;
        nodes.push(
          el(
            "div",
            { class: "divider", "data-testid": "channel-divider", "aria-hidden": "true" },
            icon(entry.channel),
            el("span", { text: `${CHANNEL_LABEL[entry.channel]} · ${entry.who}` }),
          ),
        );
      }
      nodes.push(
        el(
          "div",
          {
            class: `entry entry--customer entry--${entry.channel}`,
            "data-testid": "message",
            "data-role": "customer",
            "data-channel": entry.channel,
          },
          meta(entry, "You"),
          body(entry, "customer"),
        ),
      );
    } else if (entry.role === "assistant") {
      // Say whom the conversation is filed under when that changes, e.g. the moment an SMS sender verifies.
      const name = entry.customerName || null;
      let foot = null;
      if (name !== shown.name && (name || shown.name !== undefined)) {
        const text = name ? `Conversation on file as ${name}` : "Not linked to a customer yet";
        foot = el("div", { class: "entry-foot", "data-testid": "filed-under", text });
      }
      shown.name = name;
      nodes.push(
        el(
          "div",
          {
            class: `entry entry--assistant entry--${entry.channel}`,
            "data-testid": "message",
            "data-role": "assistant",
            "data-channel": entry.channel,
          },
          meta(entry, "Assistant"),
          body(entry, "assistant"),
          chips(entry.tools),
          foot,
        ),
      );
    } else if (entry.role === "agent" || entry.role === "notice") {
      // Written outside the customer's turns: a person on the support team, or the desk's automatic notice.
      nodes.push(
        el(
          "div",
          {
            class: `entry entry--${entry.role} entry--${entry.channel}`,
            "data-testid": "message",
            "data-role": entry.role,
            "data-channel": entry.channel,
          },
          meta(entry, entry.role === "agent" ? "Support team" : "Automatic notice", entry.role === "agent"),
          body(entry, entry.role),
        ),
      );
    } else {
      nodes.push(el("div", { class: entry.error ? "note note--error" : "note", "data-testid": "note", text: entry.text }));
    }
    return nodes;
  }

  function renderTimeline() {
    shown = { place: null, name: undefined };
    const nodes = state.entries.flatMap((entry) => renderEntry(entry));
    els.timeline.replaceChildren(...(state.entries.length ? [] : [els.welcome]), ...nodes);
    scrollDown();
  }

  function append(entry) {
    state.entries.push(entry);
    els.welcome.remove();
    els.timeline.append(...renderEntry(entry));
    save();
    scrollDown();
  }

  function scrollDown() {
    els.timeline.scrollTop = els.timeline.scrollHeight;
  }

  function typing(channel) {
    return el(
      "div",
      { class: `entry entry--assistant entry--${channel} typing`, "data-testid": "typing", "aria-label": "The assistant is replying" },
      el("div", { class: "bubble" }, el("span", { class: "dot" }), el("span", { class: "dot" }), el("span", { class: "dot" })),
    );
  }

  // --- sending --------------------------------------------------------------------------------------------

  function senderFor(preset) {
    if (preset.kind === "phone") return state.phone || config.defaultPhone;
    if (preset.kind === "visitor") return "anonymous visitor";
    return preset.email;
  }

  async function send(text) {
    text = text.trim();
    if (busy || !text) return;
    if (text.length > config.maxChars) {
      append({ role: "note", error: true, text: `Messages are limited to ${config.maxChars} characters.`, at: new Date().toISOString() });
      return;
    }
    const preset = presets.get(state.identity);
    const channel = state.channel;
    const sender = senderFor(preset);
    const who = preset.kind === "signed_in" ? preset.label.replace(/^Signed in as /, "") : sender;
    const payload = { channel, identity: preset.id, text, visitor_id: state.visitorId };
    if (preset.kind === "phone") payload.phone = state.phone || config.defaultPhone;

    busy = true;
    els.send.disabled = true;
    els.text.value = "";
    autosize();
    updateCounter();
    const at = new Date().toISOString();
    const words = text.split(/\s+/);
    const subject = channel === "email" ? words.slice(0, 8).join(" ") + (words.length > 8 ? "…" : "") : null;
    append({ role: "customer", channel, sender, who, text, at, subject });
    const indicator = typing(channel);
    els.timeline.append(indicator);
    scrollDown();
    try {
      const response = await fetch(config.endpoint, {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify(payload),
      });
      const data = await response.json().catch(() => null);
      indicator.remove();
      if (!response.ok) {
        const message = (data && data.error && data.error.message) || `The request failed (HTTP ${response.status}).`;
        append({ role: "note", error: true, text: message, at: new Date().toISOString() });
        return;
      }
      sends += 1;
      remember({ channel, identity: preset.id, phone: payload.phone || null });
      if (state.cursor === null) state.cursor = data.cursor;
      state.owner = data.owner;
      showOwner();
      if (data.reply !== null) {
        append({
          role: "assistant",
          channel,
          sender: data.sender,
          text: data.reply,
          tools: data.tools,
          customerName: data.customer_name,
          subject: data.subject,
          at: new Date().toISOString(),
        });
      } else if (data.owner !== "ai") {
        append({ role: "note", text: "Delivered to our team. No automatic reply: a person will answer.", at });
      } else {
        append({ role: "note", text: "Answered together with your previous message.", at });
      }
    } catch (error) {
      indicator.remove();
      append({ role: "note", error: true, text: "Could not reach the server. Is it still running?", at: new Date().toISOString() });
    } finally {
      busy = false;
      els.send.disabled = false;
      save();
      els.text.focus();
      schedulePoll(0);
    }
  }

  // --- what arrives between turns -------------------------------------------------------------------------

  function remember(speaker) {
    const same = (s) => s.channel === speaker.channel && s.identity === speaker.identity && s.phone === speaker.phone;
    state.speakers = [speaker, ...state.speakers.filter((s) => !same(s))].slice(0, config.maxSpeakers);
  }

  const OWNER_NOTE = {
    human: "A person from our team joined the conversation.",
    ai: "Our team handed the conversation back to the assistant: it answers your next message.",
  };
  let pollTimer = null;
  let polling = false;

  function schedulePoll(delay) {
    if (pollTimer !== null) clearTimeout(pollTimer);
    pollTimer = state.speakers.length ? setTimeout(poll, delay) : null;
  }

  async function poll() {
    pollTimer = null;
    if (polling || state.cursor === null || !state.speakers.length) return;
    if (document.hidden) return schedulePoll(config.pollMs);
    polling = true;
    const startedAt = sends;
    const payload = { visitor_id: state.visitorId, after: state.cursor, speakers: state.speakers };
    try {
      const response = await fetch(config.updates, {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify(payload),
      });
      if (response.ok && payload.visitor_id === state.visitorId) {
        const data = await response.json();
        for (const message of data.messages) {
          if (message.id <= state.cursor) continue;
          append({ role: message.author, channel: message.channel, text: message.text, at: message.at });
        }
        state.cursor = Math.max(state.cursor, data.cursor);
        if (startedAt === sends && data.owner !== state.owner) {
          const note = OWNER_NOTE[data.owner];
          if (note) {
            append({ role: "note", text: note, at: new Date().toISOString() });
          }
          state.owner = data.owner;
          showOwner();
        }
        save();
      }
    } catch (_) {
      /* the server is away for a moment: try again later */
    } finally {
      polling = false;
      schedulePoll(config.pollMs);
    }
  }

  // --- wiring ---------------------------------------------------------------------------------------------

  els.tabs.forEach((tab, i) => {
    tab.addEventListener("click", () => selectChannel(tab.dataset.channel, false));
    tab.addEventListener("keydown", (event) => {
      const step = { ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1 }[event.key];
      if (!step) return;
      event.preventDefault();
      const next = els.tabs[(i + step + els.tabs.length) % els.tabs.length];
      selectChannel(next.dataset.channel, true);
    });
  });
  els.identity.addEventListener("change", () => {
    state.identity = els.identity.value;
    state.lastIdentity[state.channel] = state.identity;
    renderControls();
    save();
  });
  els.phone.addEventListener("input", () => {
    state.phone = els.phone.value.trim();
    els.context.replaceChildren(icon(state.channel), document.createTextNode(contextLabel(presets.get(state.identity))));
    save();
  });
  els.form.addEventListener("submit", (event) => {
    event.preventDefault();
    send(els.text.value);
  });
  els.text.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      send(els.text.value);
    }
  });
  els.text.addEventListener("input", () => {
    autosize();
    updateCounter();
  });
  els.suggestions.addEventListener("click", (event) => {
    const button = event.target.closest(".suggestion");
    if (!button) return;
    els.text.value = button.textContent;
    autosize();
    updateCounter();
    els.text.focus();
  });
  els.reset.addEventListener("click", () => {
    state.visitorId = randomId();
    state.entries = [];
    state.owner = "ai";
    state.speakers = [];
    state.cursor = null;
    schedulePoll(0);
    save();
    renderControls();
    renderTimeline();
    els.text.focus();
  });
  if (window.matchMedia("(max-width: 899px)").matches) els.guide.open = false;

  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) schedulePoll(0);
  });

  renderControls();
  renderTimeline();
  schedulePoll(0);
  document.body.dataset.ready = "true";
})();
