// livetwin control room (server/dashboard.py). Plain JavaScript, no build step, no CDN.
// Rules: every piece of data reaches the DOM through textContent (never innerHTML), so a
// username such as <img src=x onerror=alert(1)> shows as text; the token lives only in
// sessionStorage and travels as a bearer header (HTTP) or a Sec-WebSocket-Protocol entry.
"use strict";

const TOKEN_KEY = "livetwin.token";
const PREVIEW_MS = 400;     // preview refresh (the preview sink makes ~2 JPEG/s)
const HEALTH_MS = 1000;     // fps, A/V health, viewers
const DECISIONS_MS = 1000;  // chat decisions while some shown message has none yet
const QUEUE_MS = 3000;      // operator queue while the chat page is shown
const SHOW_MS = 1000;       // the show's tier and next lines (also fetched after each line event)
const RETRY_MAX_MS = 3000;  // longest wait between two WebSocket reconnection attempts
const MAX_ROWS = 300;       // chat rows and transcript lines kept in the page
// RFC 7230 token characters: what a browser accepts in a WebSocket subprotocol
const PROTOCOL_SAFE = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/;

const $ = (id) => document.getElementById(id);
const state = { token: null, ws: null, wsRetry: 500, wsTries: 0, page: "live", info: null, paused: false,
                gestures: [], showPending: false,
                chats: new Map(), waitingDecision: new Set(), lines: new Map(),
                answered: new Set(), products: [], editing: null, focusScript: null };

// ------------------------------------------------------------------ DOM helpers

/** An element with text content and attributes; children are nodes or strings (as text). */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

function setText(id, text, cls) {
  const node = $(id);
  node.textContent = text;
  if (cls !== undefined) node.className = cls;
}

function clock(unixSeconds) {
  const d = unixSeconds ? new Date(unixSeconds * 1000) : new Date();
  return d.toLocaleTimeString([], { hour12: false });
}

function message(id, text, isError = false) {
  const node = $(id);
  if (!node) return;
  node.textContent = text;
  node.classList.toggle("error", isError);
}

// ------------------------------------------------------------------ token

function takeTokenFromUrl() {
  const url = new URL(location.href);
  const token = url.searchParams.get("token");
  if (token) {
    sessionStorage.setItem(TOKEN_KEY, token);
    url.searchParams.delete("token");
    history.replaceState(null, "", url.pathname + url.search + url.hash);
  }
}

function askToken(why) {
  $("token-dialog").hidden = false;
  const err = $("token-error");
  err.hidden = !why;
  err.textContent = why || "";
  $("token-input").focus();
}

async function connect() {
  state.token = sessionStorage.getItem(TOKEN_KEY);
  if (!state.token) { askToken(""); return; }
  let info;
  try {
    info = await api("GET", "/api/dashboard");
  } catch (e) {
    if (e.status === 401) { sessionStorage.removeItem(TOKEN_KEY); askToken("That token was refused."); }
    else setConn(false, "daemon unreachable");
    return;
  }
  $("token-dialog").hidden = true;
  state.info = info;
  showInfo(info);
  openSocket();
  loadGestures();
  if (!state.products.length) loadProducts();
  refreshPage();
}

// ------------------------------------------------------------------ HTTP

class ApiError extends Error {
  // data: the error body (the show routes add `field`, `product` or `line` to `detail`)
  constructor(status, detail, data) { super(detail); this.status = status; this.data = data || {}; }
}

/** One API call with the token; the parsed JSON (null for 204), or an ApiError. */
async function api(method, path, body) {
  const headers = { Authorization: "Bearer " + state.token };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(path, { method, headers, cache: "no-store",
                                body: body === undefined ? undefined : JSON.stringify(body) });
  if (r.status === 204) return null;
  const data = await r.json().catch(() => null);
  if (!r.ok) {
    let detail = data && data.detail;
    if (Array.isArray(detail)) detail = detail.map((d) => d.msg).join("; ");
    throw new ApiError(r.status, String(detail || r.statusText), data);
  }
  return data;
}

// ------------------------------------------------------------------ WebSocket

function openSocket() {
  const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws";
  const ws = PROTOCOL_SAFE.test(state.token)
    ? new WebSocket(url, ["livetwin", "bearer." + state.token])
    : new WebSocket(url + "?token=" + encodeURIComponent(state.token));
  state.ws = ws;
  ws.onopen = () => { state.wsRetry = 500; };
  ws.onmessage = (ev) => {
    let msg;
    try { msg = JSON.parse(ev.data); } catch { return; }
    onMessage(msg);
  };
  ws.onclose = (ev) => {
    if (state.ws !== ws) return;
    if (ev.code === 4401) {
      setConn(false, "offline");
      sessionStorage.removeItem(TOKEN_KEY); askToken("The token was refused."); return;
    }
    // a daemon restart or a network blip: say so, and try again until it answers
    state.wsTries += 1;
    setConn(false, "reconnecting…", "warn");
    // what the page showed is no longer known: say so rather than show it stale
    setText("st-state", "unknown: not connected", "bad");
    setText("st-av", "unknown: not connected", "muted");
    $("onair").textContent = "NO CONNECTION";
    $("onair").className = "onair";
    banner(`Lost the connection to livetwin: reconnecting (attempt ${state.wsTries})… ` +
      "Live updates resume by themselves; nothing you typed is lost.");
    setTimeout(openSocket, state.wsRetry);
    state.wsRetry = Math.min(state.wsRetry * 2, RETRY_MAX_MS);
  };
}

function send(msg) {
  if (!state.ws || state.ws.readyState !== WebSocket.OPEN) return false;
  state.ws.send(JSON.stringify(msg));
  return true;
}

function onMessage(msg) {
  switch (msg.type) {
    case "hello": hello(msg); break;
    case "state": showState(msg); break;
    case "line_start": lineStart(msg); refreshShowSoon(); break;
    case "line_end": lineEnd(msg); refreshShowSoon(); break;
    case "chat": addChat(msg); break;
    case "answer": setAnswer(msg.reply_to, msg.text); break;
    case "decision": setDecision(msg.chat_id, msg.action || msg.decision, msg.reason || ""); break;
    case "error": message("q-msg", msg.message, true); message("c-msg", msg.message, true); break;
    default: break;
  }
}

function setConn(on, text, cls) {
  setText("conn", text, "pill " + (cls || (on ? "on" : "off")));
}

function banner(text) {
  const b = $("banner");
  b.textContent = text || "";
  b.hidden = !text;
}

async function hello(msg) {
  const again = state.wsTries > 0;
  state.wsTries = 0;
  setConn(true, "live");
  banner("");
  showState(msg);
  loadTranscript();
  refreshShow();
  if (again) {  // the daemon may have restarted: its label, connectors and gestures anew
    try { state.info = await api("GET", "/api/dashboard"); showInfo(state.info); } catch (e) { /* next hello */ }
    loadGestures();
    refreshPage();
  }
}

// ------------------------------------------------------------------ live view

function showState(s) {
  state.paused = !!s.paused;
  state.product = s.product || null;
  const p = s.product;
  setText("st-product", p ? `${p.name} · ${p.price} ${p.currency}` : "none");
  const words = [s.paused ? "paused" : "running", s.on_air ? "on air" : "off air"];
  setText("st-state", words.join(", "), s.paused || !s.on_air ? "warn" : "ok");
  const badge = $("onair");
  badge.textContent = s.paused ? "PAUSED" : s.on_air ? "ON AIR" : "OFF AIR";
  badge.className = "onair " + (s.paused ? "paused" : s.on_air ? "live" : "");
  const q = $("q-pause");
  q.textContent = s.paused ? "Resume" : "Pause";
  q.classList.toggle("active", s.paused);
  $("c-pause").disabled = s.paused;
  $("c-resume").disabled = !s.paused;
}

function lineStart(m) {
  const cap = $("caption");
  cap.textContent = m.text;
  cap.className = "caption";
  cap.dataset.line = m.id;
  setText("caption-meta", `${m.source}${m.reply_to ? " · reply to " + (state.chats.get(m.reply_to)?.user ?? m.reply_to) : ""} · line ${m.id}`);
  addTranscript(m);
  if (m.reply_to) setAnswer(m.reply_to, m.text);
}

function lineEnd(m) {
  const cap = $("caption");
  if (cap.dataset.line === m.id) cap.className = "caption idle";
  const li = state.lines.get(m.id);
  if (li && m.skipped) li.append(el("span", { class: "muted small", text: " (skipped)" }));
}

function addTranscript(m) {
  if (state.lines.has(m.id)) return;
  const li = el("li", { "data-line": m.id },
                el("span", { class: "src", text: KIND_WORDS[m.source] || m.source }), m.text);
  li.title = clock(m.at);
  state.lines.set(m.id, li);
  const list = $("transcript");
  // newest first; lines fetched after a reconnect slot in by their (numeric) id
  const before = [...list.children].find((c) => Number(c.dataset.line) < Number(m.id)) || null;
  list.insertBefore(li, before);
  while (list.children.length > MAX_ROWS) {
    state.lines.delete(list.lastChild.dataset.line);
    list.lastChild.remove();
  }
}

async function loadTranscript() {
  try {
    const lines = await api("GET", "/api/transcript");
    for (const m of lines.slice(-50)) addTranscript(m);
  } catch (e) { /* the WebSocket brings new lines anyway */ }
}

// ------------------------------------------------------------------ the show: tier, next lines

// what each kind of line is, in a shop assistant's words
const KIND_WORDS = { issued: "getting ready", opener: "intro", feature: "feature", price: "price",
  urgency: "hurry", follow: "ask to follow", cart: "point to cart", qa_bridge: "invite questions",
  spike_welcome: "welcome", filler: "small talk", answer: "chat answer", greeting: "greeting",
  thanks: "thanks", operator: "your line", script: "script" };

function showOutlook(o) {
  if (!o.running) {
    setText("st-tier", "no show running", "muted");
    $("next-lines").replaceChildren();
    setText("next-empty", "No show director: only lines you say and chat answers play.");
    $("next-empty").hidden = false;
    return;
  }
  const tier = o.spike ? `${o.tier} · viewer spike (${o.profile} pitch)` : o.tier;
  setText("st-tier", `${tier} (${o.viewers} viewers)`, o.spike ? "warn" : "");
  $("next-lines").replaceChildren(...o.next.map((l) =>
    el("li", {}, el("span", { class: "src", text: KIND_WORDS[l.kind] || l.kind.replaceAll("_", " ") }), l.text)));
  setText("next-empty", state.paused ? "Paused: the show plans nothing until you resume."
    : "Nothing planned yet: the next pitch is chosen when the current line ends " +
      "(a product needs an approved script to be pitched).");
  $("next-empty").hidden = o.next.length > 0;
}

async function refreshShow() {
  if (!state.token || document.hidden) return;
  try { showOutlook(await api("GET", "/api/show")); } catch (e) { /* next round */ }
}

/** After a line event: now, and again once the director has handed the twin its next
 *  line (it does so within a poll, 0.2 s, of a line starting). */
function refreshShowSoon() {
  refreshShow();
  if (state.showPending) return;
  state.showPending = true;
  setTimeout(() => { state.showPending = false; refreshShow(); }, 350);
}

async function pollShow() {
  if (state.page === "live") await refreshShow();
  setTimeout(pollShow, SHOW_MS);
}

function showHealth(h) {
  const live = h.live || {};
  const fps = Number(live.fps || h.fps || 0);
  setText("st-fps", fps ? fps.toFixed(1) : "—");
  setText("st-viewers", h.viewers === null || h.viewers === undefined ? "—" : String(h.viewers));
  setText("st-backlog", String((live.pending || 0) + (live.ready || 0) + (live.synthesising ? 1 : 0)));
  const out = h.output;
  if (!out) setText("st-av", "no output", "muted");
  else {
    const failing = (out.sinks || []).filter((s) => s.state !== "connected");
    const bad = !out.running || failing.length > 0;
    const offset = Math.abs(out.av_offset_s * 1000);
    const text = (out.running ? "sending" : "STOPPED") +
      (offset <= 45 ? " · sound in sync" : ` · sound ${offset.toFixed(0)} ms off the picture`) +
      (out.late_ticks ? ` · ${out.late_ticks} late frames` : "") +
      (failing.length ? " · " + failing.map((s) => `${s.name} ${s.state}`).join(", ") : "");
    setText("st-av", text, bad ? "bad" : out.late_ticks > 0 ? "warn" : "ok");
    $("st-av").title = `A/V offset ${(out.av_offset_s * 1000).toFixed(0)} ms, longest gap ` +
      `${out.max_gap_ms.toFixed(0)} ms, late ticks ${out.late_ticks}`;
  }
}

async function pollHealth() {
  if (state.token && !document.hidden) {
    try { showHealth(await api("GET", "/api/health")); } catch (e) { /* shown by the socket */ }
  }
  setTimeout(pollHealth, HEALTH_MS);
}

let previewUrl = null;
async function pollPreview() {
  if (state.token && state.page === "live" && !document.hidden) {
    try {
      const r = await fetch("/api/preview.jpg", { headers: { Authorization: "Bearer " + state.token },
                                                  cache: "no-store" });
      if (r.status === 200) {
        const url = URL.createObjectURL(await r.blob());
        const img = $("preview");
        img.onload = () => { if (previewUrl && previewUrl !== url) URL.revokeObjectURL(previewUrl); previewUrl = url; };
        img.src = url;
        $("preview-empty").hidden = true;
      } else if (r.status === 404) {
        setText("preview-empty", "the preview is off (output.preview_fps is 0)");
      }
    } catch (e) { /* daemon restarting */ }
  }
  setTimeout(pollPreview, PREVIEW_MS);
}

function showInfo(info) {
  setText("avatar-name", info.avatar);
  showLabel(info.label);
  const dl = $("consent");
  dl.replaceChildren();
  if (!info.consent) dl.append(el("dt", { text: "record" }), el("dd", { class: "bad", text: "unknown (not readable)" }));
  else for (const [k, v] of Object.entries(info.consent)) dl.append(el("dt", { text: k }), el("dd", { text: v }));
  setText("st-conn", info.connectors.length ? info.connectors.join(", ") : "none (API and demo only)");
}

function showLabel(label) {
  setText("label-state", label.on ? `On the video now: “${label.text}”`
    : "OFF: the config turned the AI label off (type a text below to show one)", label.on ? "ok" : "bad");
  if (document.activeElement !== $("label-text")) $("label-text").value = label.text || "";
}

async function saveLabel(ev) {
  ev.preventDefault();
  const form = $("label-form");
  clearFieldErrors(form);
  message("label-msg", "");
  try {
    const label = await api("POST", "/api/label", { text: $("label-text").value });
    showLabel(label);
    message("label-msg", `The video now shows “${label.text}”.`);
  } catch (e) {
    const box = $("label-error");
    box.textContent = e.message;
    box.hidden = false;
    $("label-text").classList.add("invalid");
    $("label-text").focus();
  }
}

// ------------------------------------------------------------------ gestures

async function loadGestures() {
  try { state.gestures = await api("GET", "/api/gestures"); } catch (e) { return; }
  const sel = $("g-name");
  const keep = sel.value;
  const groups = new Map();
  for (const g of state.gestures) {
    if (!groups.has(g.category)) groups.set(g.category, el("optgroup", { label: g.category.replaceAll("_", " ") }));
    groups.get(g.category).append(el("option", { value: g.id, text: g.name }));
  }
  sel.replaceChildren(...groups.values());
  if (keep && state.gestures.some((g) => g.id === keep)) sel.value = keep;
  $("g-play").disabled = state.gestures.length === 0;
  describeGesture();
}

function describeGesture() {
  const g = state.gestures.find((x) => x.id === $("g-name").value);
  setText("g-desc", g ? g.description : "This avatar has no gestures.");
}

async function playGesture(ev) {
  ev.preventDefault();
  const name = $("g-name").value;
  if (!name) { message("g-msg", "Choose a gesture first.", true); return; }
  try {
    const r = await api("POST", "/api/gesture", { name });
    const g = state.gestures.find((x) => x.id === r.name);
    message("g-msg", `Playing “${g ? g.name : r.name}” now (${r.duration_s.toFixed(1)} s).`);
  } catch (e) { message("g-msg", e.message, true); }
}

// ------------------------------------------------------------------ controls

function command(name, msgId) {
  if (!send({ type: "command", command: name })) message(msgId, "Not connected to the daemon.", true);
  else message(msgId, `Sent: ${name.replaceAll("_", " ")}.`);
}

async function sayLine(input, msgId) {
  const text = input.value.trim();
  if (!text) { message(msgId, "Type a line first.", true); return; }
  try {
    const r = await api("POST", "/api/say", { text });
    message(msgId, `Queued as line ${r.id}.`);
    input.value = "";
  } catch (e) { message(msgId, e.message, true); }
}

// ------------------------------------------------------------------ chat

function addChat(m) {
  const action = m.decision || m.action;  // if the chat message carries the gate's verdict
  const decision = el("td", {}, el("span", { class: "decision", text: action || "…" }));
  const row = el("tr", { "data-chat": m.id },
    el("td", { text: clock() }),
    el("td", { class: "user", text: m.user, title: m.platform }),
    el("td", { class: "text", text: m.text }),
    decision, el("td", { class: "why", text: m.reason || "" }), el("td", { class: "answer" }));
  state.chats.set(m.id, { user: m.user, row });
  if (action) setDecision(m.id, action, m.reason || "");
  else if (state.info && state.info.chat_pipeline) state.waitingDecision.add(m.id);
  else decision.firstChild.textContent = "—";
  const body = $("chat-rows");
  body.prepend(row);
  while (body.children.length > MAX_ROWS) {
    state.chats.delete(body.lastChild.dataset.chat);
    body.lastChild.remove();
  }
  $("chat-empty").hidden = true;
  if (state.page !== "chat") {
    const badge = $("chat-badge");
    badge.textContent = String(Number(badge.textContent || 0) + 1);
    badge.hidden = false;
  }
}

function setDecision(chatId, action, reason) {
  const c = state.chats.get(chatId);
  if (!c) return;
  const tag = c.row.querySelector(".decision");
  tag.textContent = action;
  tag.className = "decision " + action.replace(/[^a-z_]/g, "");
  const why = c.row.querySelector(".why");
  why.textContent = plainReason(action, reason);
  why.title = reason;  // the pipeline's own words, for the curious
  state.waitingDecision.delete(chatId);
}

/** The safety gate's reason in a shop assistant's words where it is an answer from the
 *  catalog ("mug/faq concept [...] (score 1.00)" -> "from the FAQ of Stoneware Mug"). */
function plainReason(action, reason) {
  if (action !== "answer") return reason;
  const SOURCE = { faq: "FAQ", price: "price", stock: "stock count", fact: "facts" };
  const parts = reason.replace(/ \(score [\d.]+\)$/, "").split("; ").map((part) => {
    const m = /^([A-Za-z0-9._-]+)\/(faq|price|stock|fact)\b/.exec(part);
    if (m) {
      const p = state.products.find((x) => x.id === m[1]);
      return `from the ${SOURCE[m[2]]} of ${p ? p.name : m[1]}`;
    }
    if (part.startsWith("general:")) return "from the shop's general answers";
    return null;
  });
  return parts.every((x) => x) ? "Answered " + parts.join(" and ") : reason;
}

function setAnswer(chatId, text) {
  const c = state.chats.get(chatId);
  if (c) c.row.querySelector("td.answer").textContent = text;  // not the "decision answer" tag
}

async function pollDecisions() {
  if (state.token && state.waitingDecision.size) {
    try {
      for (const d of await api("GET", "/api/chat/decisions?n=500")) {
        if (state.waitingDecision.has(d.chat_id)) setDecision(d.chat_id, d.action, d.reason);
      }
    } catch (e) { /* next round */ }
  }
  setTimeout(pollDecisions, DECISIONS_MS);
}

/** One operator-queue question: a box to answer it on air (as an operator line), and
 *  the product whose FAQ keeps the answer when it is also saved. */
function queueItem(q) {
  const input = el("input", { type: "text", maxlength: "2000", placeholder: "Type the answer…",
                              "aria-label": "Answer to " + String(q.user ?? "") });
  const product = el("select", { class: "faq-product", "aria-label": "Product whose FAQ keeps the answer" },
    ...state.products.map((p) => el("option", { value: p.id, text: p.name })));
  const current = state.product && state.products.some((p) => p.id === state.product.id) ? state.product.id : null;
  if (current) product.value = current;
  const say = el("button", { type: "submit", class: "primary", text: "Say" });
  const save = el("button", { type: "button", class: "save-faq", text: "Say + save to FAQ",
                              title: "Say it now, and save it so the twin answers this question itself next time" });
  save.disabled = state.products.length === 0;
  const err = el("p", { class: "field-error", hidden: "" });
  const form = el("form", { class: "queue-form" }, el("div", { class: "say-form" }, input, say),
                  el("div", { class: "faq-save" }, el("span", { class: "muted small", text: "FAQ of" }), product, save), err);
  const answer = async (toFaq) => {
    clearFieldErrors(form);
    const text = input.value.trim();
    if (!text) { err.textContent = "Type the answer first."; err.hidden = false; input.focus(); return; }
    try {
      let saved = "";
      if (toFaq) {  // saved first: a refused answer is neither said nor taken off the queue
        const p = await api("POST", `/api/products/${encodeURIComponent(product.value)}/faq`,
                            { q: [String(q.text ?? "")], a: text, chat_id: String(q.chat_id) });
        saved = ` Saved in the FAQ of ${p.name}: the twin answers this question itself from now on.`;
        loadProducts();
      }
      const r = await api("POST", "/api/say", { text });
      state.answered.add(q.chat_id);
      setAnswer(q.chat_id, text);
      message("queue-msg", `Answer queued as line ${r.id}.${saved}`);
      li.remove();
      if (!toFaq) await api("POST", `/api/chat/queue/${encodeURIComponent(q.chat_id)}/done`).catch(() => null);
    } catch (e) {
      err.textContent = e.message;
      err.hidden = false;
      input.classList.add("invalid");
    }
  };
  form.addEventListener("submit", (ev) => { ev.preventDefault(); answer(false); });
  save.addEventListener("click", () => answer(true));
  const li = el("li", { "data-chat": String(q.chat_id) },
                el("strong", { text: String(q.user ?? "") }), ": ", String(q.text ?? ""), form);
  return li;
}

async function refreshQueue() {
  // the box being typed in is never replaced under the operator's fingers
  const typing = document.activeElement && document.activeElement.closest("#queue");
  if (!state.token || state.page !== "chat" || document.hidden || typing) return;
  try {
    const items = (await api("GET", "/api/chat/queue")).filter((q) => !state.answered.has(q.chat_id));
    const list = $("queue");
    list.replaceChildren(...items.slice().reverse().map(queueItem));
    if (!items.length) list.append(el("li", { class: "muted", text: "Nothing waiting." }));
  } catch (e) { /* next round */ }
}

async function pollQueue() {
  await refreshQueue();
  setTimeout(pollQueue, QUEUE_MS);
}

// ------------------------------------------------------------------ products

const IMPORT_LIMIT = 64 * 1024;  // the daemon's request body limit (server/guard.py)
const KINDS = ["opener", "feature", "price", "urgency", "follow", "cart", "qa_bridge"];

async function loadProducts() {
  let items;
  try { items = await api("GET", "/api/products"); } catch (e) { message("p-msg", e.message, true); return; }
  state.products = items;
  $("product-rows").replaceChildren(...items.map(productRow));
  $("products-empty").hidden = items.length > 0;
  fillProductSelect();
}

function productRow(p) {
  const edit = el("button", { type: "button", class: "small-btn", text: "Edit" });
  edit.addEventListener("click", () => { editProduct(p); $("pf-name").focus(); });
  const gen = el("button", { type: "button", class: "small-btn", text: "Generate script" });
  gen.addEventListener("click", () => { location.hash = "#scripts"; generateScript(p.id, ""); });
  return el("tr", { "data-product": p.id },
    el("td", { class: "pid", text: p.id }), el("td", { text: p.name }),
    el("td", { text: `${p.price} ${p.currency}` + (p.list_price === null || p.list_price === undefined ? "" : ` (list ${p.list_price})`) }),
    el("td", { text: p.stock === null || p.stock === undefined ? "—" : String(p.stock) }),
    el("td", { text: (p.facts || []).join(" · ") }),
    el("td", { text: String((p.faq || []).length) }),
    el("td", { class: "row-actions" }, edit, gen));
}

/** One FAQ entry of the form: trigger phrases (comma-separated) and the answer. */
function faqRow(q = [], a = "") {
  const qs = el("input", { type: "text", class: "faq-q", placeholder: "how much, price",
                           "aria-label": "Trigger phrases" });
  qs.value = q.join(", ");
  const ans = el("input", { type: "text", class: "faq-a", placeholder: "It is {price} EUR.",
                            "aria-label": "Answer" });
  ans.value = a;
  const rm = el("button", { type: "button", class: "small-btn", text: "Remove", title: "Remove this question" });
  const row = el("div", { class: "faq-row" }, el("div", { class: "faq-inputs" }, qs, ans, rm),
                 el("p", { class: "field-error", hidden: "" }));
  rm.addEventListener("click", () => row.remove());
  return row;
}

function clearFieldErrors(root) {
  for (const p of root.querySelectorAll(".field-error")) { p.hidden = true; p.textContent = ""; }
  for (const n of root.querySelectorAll(".invalid")) n.classList.remove("invalid");
}

/** `text` beside the form field named by the daemon's dotted key (`price`, `faq.1.a`). */
function showFieldError(field, text, faqRows) {
  const form = $("product-form");
  const parts = String(field || "").split(".");
  let box = null, input = null;
  if (parts[0] === "faq" && parts.length > 1 && faqRows[Number(parts[1])]) {
    const row = faqRows[Number(parts[1])];
    box = row.querySelector(".field-error");
    input = row.querySelector(parts[2] === "a" ? ".faq-a" : ".faq-q");
  }
  if (!box) {
    const boxes = [...form.querySelectorAll(".field-error")];
    box = boxes.find((b) => b.dataset.for === parts[0]) || boxes.find((b) => b.dataset.for === "");
    input = form.elements.namedItem(parts[0]);
  }
  box.textContent = text;
  box.hidden = false;
  if (input && input.classList) { input.classList.add("invalid"); input.setAttribute("aria-invalid", "true"); input.focus(); }
}

/** A number typed in a field: a number when it reads as one, else the text (the daemon
 *  then says what is wrong), null when empty and optional. */
function numberField(id, optional) {
  const t = $(id).value.trim();
  if (t === "") return optional ? null : undefined;
  const n = Number(t.replace(",", "."));
  return Number.isFinite(n) ? n : t;
}

function productBody() {
  const body = { id: $("pf-id").value.trim(), name: $("pf-name").value.trim(),
                 price: numberField("pf-price", false), currency: $("pf-currency").value.trim(),
                 list_price: numberField("pf-list-price", true), stock: numberField("pf-stock", true),
                 facts: $("pf-facts").value.split("\n").map((f) => f.trim()).filter((f) => f) };
  if (body.price === undefined) delete body.price;
  const faqRows = [...$("pf-faq").children].filter((r) =>
    r.querySelector(".faq-q").value.trim() || r.querySelector(".faq-a").value.trim());
  body.faq = faqRows.map((r) => ({
    q: r.querySelector(".faq-q").value.split(",").map((q) => q.trim()).filter((q) => q),
    a: r.querySelector(".faq-a").value.trim() }));
  return { body, faqRows };
}

function editProduct(p) {
  const form = $("product-form");
  clearFieldErrors(form);
  const editing = !!p;
  p = p || { id: "", name: "", price: "", currency: "", list_price: null, stock: null, facts: [], faq: [] };
  $("pf-id").value = p.id;
  $("pf-id").readOnly = editing;
  $("pf-name").value = p.name;
  $("pf-price").value = p.price === "" ? "" : String(p.price);
  $("pf-currency").value = p.currency;
  $("pf-list-price").value = p.list_price === null || p.list_price === undefined ? "" : String(p.list_price);
  $("pf-stock").value = p.stock === null || p.stock === undefined ? "" : String(p.stock);
  $("pf-facts").value = (p.facts || []).join("\n");
  $("pf-faq").replaceChildren(...(p.faq || []).map((f) => faqRow(f.q, f.a)));
  setText("pf-title", editing ? `Edit ${p.id}` : "Add a product");
  $("pf-save").textContent = editing ? "Save changes" : "Add product";
  message("pf-msg", "");
}

async function saveProduct(ev) {
  ev.preventDefault();
  const form = $("product-form");
  clearFieldErrors(form);
  const { body, faqRows } = productBody();
  try {
    const r = await api("POST", "/api/products", body);
    editProduct(r);
    message("pf-msg", `${r.added ? "Added" : "Saved"} ${r.id}: ${r.name} · ${r.price} ${r.currency}. ` +
      "Its scripts are on the Scripts page.");
    loadProducts();
  } catch (e) {
    if (e.status === 422) {
      showFieldError(e.data.field, e.message, faqRows);
      message("pf-msg", "Not saved: fix the field marked in red.", true);
    } else message("pf-msg", e.message, true);
  }
}

async function importCatalog(ev) {
  ev.preventDefault();
  const file = $("import-file").files[0];
  if (!file) { message("import-msg", "Choose a catalog file first.", true); return; }
  const tooBig = `${file.name} is ${Math.ceil(file.size / 1024)} KB, more than the 64 KB the dashboard ` +
    `takes; import it with \`livetwin products import ${file.name}\` instead.`;
  if (file.size > IMPORT_LIMIT) { message("import-msg", tooBig, true); return; }
  let text;
  try { text = await file.text(); } catch (e) { message("import-msg", `Cannot read ${file.name}.`, true); return; }
  const body = { yaml: text, name: file.name };
  if (new Blob([JSON.stringify(body)]).size > IMPORT_LIMIT) { message("import-msg", tooBig, true); return; }
  try {
    const r = await api("POST", "/api/products/import", body);
    message("import-msg", `${file.name}: ${r.products} product(s) stored (${r.added} new, ${r.updated} changed).`);
    $("import-file").value = "";
    loadProducts();
  } catch (e) {
    message("import-msg", e.status === 413 ? tooBig : `Nothing imported: ${e.message}`, true);
  }
}

// ------------------------------------------------------------------ scripts

function fillProductSelect() {
  const sel = $("gen-product");
  const keep = sel.value;
  sel.replaceChildren(...state.products.map((p) => el("option", { value: p.id, text: `${p.name} (${p.id})` })));
  if (keep && state.products.some((p) => p.id === keep)) sel.value = keep;
  $("gen-button").disabled = state.products.length === 0;
}

async function generateScript(productId, lang) {
  if (!productId) { message("s-msg", "Choose a product first.", true); return; }
  message("s-msg", `Writing a script for ${productId}…`);
  if (state.products.some((p) => p.id === productId)) $("gen-product").value = productId;
  $("gen-button").disabled = true;
  try {
    const r = await api("POST", "/api/scripts/generate", lang ? { product_id: productId, lang } : { product_id: productId });
    message("s-msg", `Script ${r.id}: ${r.product_id} v${r.version} (${r.lang}, ${r.lines.length} lines ` +
      `from ${r.origin}) is a draft: read it, edit it if needed, then approve it.`);
    state.focusScript = r.id;
    await loadScripts();
  } catch (e) { message("s-msg", e.message, true); }
  finally { $("gen-button").disabled = state.products.length === 0; }
}

/** Lines of `next` marked against `prev`: [{text, kind, change: "same"|"added"}] plus removed ones. */
function diffLines(prev, next) {
  const a = prev.map((l) => l.text), b = next.map((l) => l.text);
  const n = a.length, m = b.length;
  const dp = Array.from({ length: n + 1 }, () => new Array(m + 1).fill(0));
  for (let i = n - 1; i >= 0; i--) for (let j = m - 1; j >= 0; j--)
    dp[i][j] = a[i] === b[j] ? dp[i + 1][j + 1] + 1 : Math.max(dp[i + 1][j], dp[i][j + 1]);
  const out = [];
  let i = 0, j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[i] === b[j]) { out.push({ ...next[j], change: "same" }); i++; j++; }
    else if (j < m && (i >= n || dp[i][j + 1] >= dp[i + 1][j])) { out.push({ ...next[j], change: "added" }); j++; }
    else { out.push({ ...prev[i], change: "removed" }); i++; }
  }
  return out;
}

async function loadScripts() {
  let items;
  try { items = await api("GET", "/api/scripts"); } catch (e) { message("s-msg", e.message, true); return; }
  const box = $("scripts");
  // on air: per product and language, the newest approved version (store.on_air)
  const onAir = new Map(), newest = new Map();
  const key = (s) => s.product_id + "\u0000" + s.lang;
  for (const s of items) {
    if (s.status === "approved" && (!onAir.has(key(s)) || onAir.get(key(s)).version < s.version))
      onAir.set(key(s), s);
    if (!newest.has(key(s)) || newest.get(key(s)).version < s.version) newest.set(key(s), s);
  }
  // diff against the version it was made from, else the previous version of the same script
  const byId = new Map(items.map((s) => [s.id, s]));
  const previous = (s) => byId.get(s.parent_id) || items.filter((o) => key(o) === key(s) && o.version < s.version)
    .sort((x, y) => y.version - x.version)[0];
  // the card being edited is kept as it is (never replaced under the operator's fingers)
  const editing = state.editing === null ? null
    : [...box.children].find((c) => c.dataset.script === String(state.editing)) || null;
  if (!editing) state.editing = null;
  box.replaceChildren(...items.slice()
    .sort((x, y) => x.product_id.localeCompare(y.product_id) || x.lang.localeCompare(y.lang) || y.version - x.version)
    .map((s) => (editing && s.id === state.editing ? editing
      : scriptCard(s, onAir.get(key(s)) === s, previous(s), newest.get(key(s)) === s))));
  $("scripts-empty").textContent = state.info && !state.info.scripts_api
    ? "This daemon has no script store (scripts appear here once serve opens one)."
    : "No scripts yet: choose a product and generate one.";
  $("scripts-empty").hidden = items.length > 0;
  if (state.focusScript !== null) {
    const card = [...box.children].find((c) => c.dataset.script === String(state.focusScript));
    state.focusScript = null;
    if (card) { card.classList.add("flash"); card.scrollIntoView({ block: "nearest" }); }
  }
}

function scriptCard(s, isOnAir, parent, isNewest) {
  const head = el("header", {}, el("strong", { text: `${s.product_id} v${s.version}` }),
    el("span", { class: "status " + s.status, text: s.status }),
    el("span", { class: "muted small", text: `${s.lang} · ${s.origin} · ${s.lines.length} lines` }));
  if (isOnAir) head.append(el("span", { class: "onair-tag", text: "ON AIR" }));
  const actions = el("span", { class: "actions" });
  const card = el("div", { class: "script", "data-script": String(s.id) });
  const editBtn = el("button", { type: "button", text: "Edit" });
  editBtn.addEventListener("click", () => openEditor(s, card));
  actions.append(editBtn);
  for (const [verb, cls] of [["approve", "good"], ["reject", "bad"]]) {
    const b = el("button", { type: "button", class: cls, text: verb[0].toUpperCase() + verb.slice(1) });
    b.disabled = s.status === verb + "d";
    b.addEventListener("click", async () => {
      try { await api("POST", `/api/scripts/${s.id}/${verb}`); message("s-msg", `Script ${s.id} ${verb}d.`); loadScripts(); }
      catch (e) { message("s-msg", e.message, true); }
    });
    actions.append(b);
  }
  const lines = parent ? diffLines(parent.lines, s.lines) : s.lines.map((l) => ({ ...l, change: "same" }));
  if (parent) {
    const added = lines.filter((l) => l.change === "added").length;
    const removed = lines.filter((l) => l.change === "removed").length;
    head.append(el("span", { class: "muted small diffstat", text: `+${added} −${removed} vs v${parent.version}` }));
  }
  head.append(actions);
  const list = el("ol", { class: "lines" }, ...lines.map((l) => {
    const li = el("li", { class: "line-" + l.change }, el("span", { class: "kind", text: l.kind }), l.text);
    if (l.change !== "same") li.title = `${l.change} since v${parent.version}`;
    return li;
  }));
  card.append(head);
  if (s.note) card.append(el("p", { class: "muted small note", text: s.note }));
  // older versions that are not on air fold their lines away
  if (isNewest || isOnAir) card.append(list);
  else card.append(el("details", {}, el("summary", { class: "muted small", text: `show the ${s.lines.length} lines` }), list));
  return card;
}

/** The line-by-line editor in place of `card`'s lines; saving makes a new draft version. */
function openEditor(s, card) {
  state.editing = s.id;
  const rows = el("ol", { class: "editor" });
  const addRow = (l) => {
    const kind = el("select", { "aria-label": "Line kind" },
      ...(KINDS.includes(l.kind) ? KINDS : [l.kind, ...KINDS]).map((k) => el("option", { value: k, text: k })));
    kind.value = l.kind;
    const text = el("textarea", { rows: "2", maxlength: "2000", "aria-label": "Line text" });
    text.value = l.text;
    const rm = el("button", { type: "button", class: "small-btn", text: "Remove", title: "Remove this line" });
    const li = el("li", { class: "edit-line", "data-kind": l.kind },
                  el("div", { class: "edit-row" }, kind, text, rm), el("p", { class: "field-error", hidden: "" }));
    li.intents = l.intents || [];
    rm.addEventListener("click", () => li.remove());
    rows.append(li);
    return li;
  };
  s.lines.forEach(addRow);
  const add = el("button", { type: "button", text: "Add a line" });
  add.addEventListener("click", () => addRow({ text: "", kind: "feature" }).querySelector("textarea").focus());
  const save = el("button", { type: "button", class: "primary", text: "Save as a new draft" });
  const cancel = el("button", { type: "button", text: "Cancel" });
  const err = el("p", { class: "field-error", hidden: "" });
  const editor = el("div", { class: "script-editor" },
    el("p", { class: "muted small", text: `Editing v${s.version}: saving makes a new draft version; ` +
      `v${s.version} stays as it is${s.status === "approved" ? " (and on air until the new draft is approved)" : ""}.` }),
    rows, err, el("div", { class: "buttons" }, add, save, cancel));
  const old = [...card.children].filter((c) => c.tagName !== "HEADER");
  for (const c of old) c.remove();
  card.append(editor);
  card.classList.add("editing");
  for (const b of card.querySelectorAll("header button")) if (b.textContent === "Edit") b.disabled = true;
  cancel.addEventListener("click", () => { state.editing = null; loadScripts(); });
  save.addEventListener("click", async () => {
    clearFieldErrors(editor);
    const lis = [...rows.children];
    const lines = lis.map((li) => {
      const kind = li.querySelector("select").value;
      const line = { text: li.querySelector("textarea").value.trim(), kind };
      if (kind === li.dataset.kind && li.intents.length) line.intents = li.intents;
      return line;
    });
    save.disabled = true;
    try {
      const r = await api("PUT", `/api/scripts/${s.id}`, { lines });
      message("s-msg", `Saved as script ${r.id}: ${r.product_id} v${r.version}, a draft (v${s.version} is unchanged).`);
      state.editing = null;
      state.focusScript = r.id;
      await loadScripts();
    } catch (e) {
      const li = e.status === 422 && e.data.line ? lis[e.data.line - 1] : null;
      const box = li ? li.querySelector(".field-error") : err;
      box.textContent = e.message;
      box.hidden = false;
      if (li) { li.classList.add("invalid"); li.querySelector("textarea").focus(); }
      message("s-msg", li ? `Not saved: line ${e.data.line} is marked in red.` : "Not saved.", true);
    } finally { save.disabled = false; }
  });
  rows.querySelector("textarea")?.focus();
}

// ------------------------------------------------------------------ pages

function refreshPage() {
  if (!state.token) return;
  if (state.page === "products") loadProducts();
  if (state.page === "scripts") { loadProducts(); loadScripts(); }
  if (state.page === "chat") { if (!state.products.length) loadProducts(); refreshQueue(); }
  if (state.page === "live") refreshShow();
}

function showPage() {
  const name = (location.hash || "#live").slice(1);
  state.page = document.getElementById("page-" + name) ? name : "live";
  for (const sec of document.querySelectorAll(".page")) sec.hidden = sec.dataset.page !== state.page;
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.dataset.page === state.page);
  if (state.page === "chat") { $("chat-badge").hidden = true; $("chat-badge").textContent = ""; }
  refreshPage();
}

function wire() {
  $("token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const t = $("token-input").value.trim();
    if (!t) return;
    sessionStorage.setItem(TOKEN_KEY, t);
    $("token-input").value = "";
    connect();
  });
  $("logout").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    state.token = null;
    if (state.ws) { const ws = state.ws; state.ws = null; ws.close(); }
    setConn(false, "offline");
    askToken("");
  });
  for (const b of document.querySelectorAll("button[data-command]")) {
    const msgId = b.closest("#page-control") ? "c-msg" : "q-msg";
    b.addEventListener("click", () => command(b.dataset.command, msgId));
  }
  $("q-say").addEventListener("submit", (ev) => { ev.preventDefault(); sayLine($("q-say-text"), "q-msg"); });
  $("c-say").addEventListener("submit", (ev) => { ev.preventDefault(); sayLine($("c-say-text"), "c-msg"); });
  $("product-form").addEventListener("submit", saveProduct);
  $("pf-clear").addEventListener("click", () => { editProduct(null); $("pf-id").focus(); });
  $("pf-faq-add").addEventListener("click", () => { const row = faqRow(); $("pf-faq").append(row); row.querySelector("input").focus(); });
  $("import-form").addEventListener("submit", importCatalog);
  $("label-form").addEventListener("submit", saveLabel);
  $("g-form").addEventListener("submit", playGesture);
  $("g-name").addEventListener("change", describeGesture);
  $("gen-form").addEventListener("submit", (ev) => { ev.preventDefault(); generateScript($("gen-product").value, $("gen-lang").value); });
  window.addEventListener("hashchange", showPage);
}

takeTokenFromUrl();
wire();
showPage();
connect();
pollHealth();
pollPreview();
pollDecisions();
pollQueue();
pollShow();
