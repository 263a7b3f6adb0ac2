// whalesong chat: the page. It talks to the server only through the
// whalesong client: one subscription for the room on screen (it starts with
// the room's last 50 messages), history pages of the room when the reader
// scrolls to the top, and one live subscription to chat.* that counts
// unread messages and discovers rooms other people open.
import { connect } from "/whalesong.js";

const HISTORY = 50; // messages shown when joining a room, and per page scrolled back
const NEAR_TOP = 200; // px from the top of the scroller at which older messages load
const MAX_SHOWN = 1000; // older messages leave the page
const GROUP_MS = 5 * 60 * 1000; // one nick's lines within 5 minutes read as one block
const MAX_TEXT = 1000;
const DEFAULT_ROOMS = ["lobby", "golang", "random"];
const ROOM_RE = /^[a-z0-9][a-z0-9_-]{0,31}$/;
const NICK_RE = /^[\p{L}\p{Nd}_.\- ]{1,24}$/u; // the server's checkNick: letters, decimal digits
const STORE = { nick: "whalesong.chat.nick", rooms: "whalesong.chat.rooms" };

const $ = (id) => document.getElementById(id);

const chat = {
  client: null,
  nick: "",
  room: "",
  sub: null,
  wasOpen: false,
  rooms: new Set(DEFAULT_ROOMS),
  unread: new Map(),
  shown: new Set(), // seqs on screen in this room
  pendingBySeq: new Map(), // published, acknowledged, not yet on screen
  lastShown: null, // {nick, time} of the newest message, for grouping
  batch: null, // messages waiting to be appended at the end of this task
  older: { loading: false, done: false }, // scrolling back through the room's history
};

// window.__chat is a small read-mostly hook for debugging and for the
// browser tests: the connection state as the client reported it, every gap,
// and a count of what the room's handler received and in which order.
const hook = {
  state: "connecting",
  states: [],
  gaps: [], // the pattern of every gap
  gapInfo: [], // every gap's info: {pattern, reason, after, before}
  pages: 0, // history pages read while scrolling back
  errors: [],
  room: "",
  subscribed: "", // the room whose subscription the server has acknowledged
  received: 0,
  lastSeq: 0,
  outOfOrder: 0,
  /** The messages on screen, oldest first. */
  messages() {
    return [...$("messages").querySelectorAll(".msg")].map((li) => ({
      seq: Number(li.dataset.seq),
      nick: li.querySelector(".nick").textContent,
      text: li.querySelector(".text").textContent,
    }));
  },
  /** Publishes any data to any topic; resolves to {seq} or {code, message}. */
  publish(topic, data) {
    return chat.client.publish(topic, data).then(
      (seq) => ({ seq }),
      (err) => ({ code: err.code || "", message: String(err.message) }),
    );
  },
  /** Sends text to the current room as the composer does. */
  send: (text) => send(text),
  /** Switches to a room as a click in the room list does. */
  join: (room) => join(room),
  /** Whether scrolling back has reached the oldest message the server keeps. */
  olderDone: () => chat.older.done,
};
window.__chat = hook;

// ---- connection ----------------------------------------------------------

function wsURL(nick) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/ws?nick=${encodeURIComponent(nick)}`;
}

function start(nick) {
  chat.client?.close();
  chat.nick = nick;
  chat.wasOpen = false;
  chat.sub = null;
  renderMe();
  const client = connect(wsURL(nick));
  chat.client = client;
  const mine = (fn) => (...args) => { if (chat.client === client) fn(...args); };
  client.on("state", mine(showState));
  client.on("gap", mine(onGap));
  client.on("error", mine((err) => {
    hook.errors.push(err?.code || String(err?.message || err));
    console.warn("whalesong:", err);
  }));
  client.subscribe("chat.*", mine(countUnread));
  const room = roomFromHash() || chat.room || DEFAULT_ROOMS[0];
  chat.room = "";
  join(room);
}

function showState(state) {
  hook.state = state;
  hook.states.push(state);
  if (state === "open") chat.wasOpen = true;
  const label = {
    open: "Live",
    connecting: chat.wasOpen ? "Reconnecting…" : "Connecting…",
    closed: "Offline",
  }[state] || state;
  const badge = $("state");
  badge.dataset.state = state;
  badge.textContent = label;
}

function onGap(info) {
  const { pattern, reason, after, before } = info;
  hook.gaps.push(pattern);
  hook.gapInfo.push({ pattern, reason, after, before });
  if (pattern !== `chat.${chat.room}`) return;
  hook.lastSeq = 0; // a new epoch numbers its events from 1 again
  // What is above the marker belongs to the old sequence space: history
  // pages of the new one cannot go there.
  if (reason === "reset") chat.older.done = true;
  const li = document.createElement("li");
  li.className = "divider";
  li.dataset.reason = reason;
  li.dataset.after = String(after);
  li.dataset.before = String(before);
  li.textContent = missingText(info);
  chat.lastShown = null;
  if (chat.batch) flushMessages(); // the divider goes after what came before the gap
  $("messages").append(li);
  notice(reason === "reset"
    ? "The server restarted: messages sent while this page was away may be missing."
    : "Some messages of this room are no longer kept by the server: they may be missing.");
}

// missingText names what a gap may have lost, from its range: messages
// with after < seq < before (seqs count every room's messages).
function missingText({ reason, after, before }) {
  if (reason === "reset") return `server restarted: messages after #${after} may be missing here`;
  const first = after + 1, last = before - 1;
  if (last <= first) return `message #${first} may be missing here`;
  return `messages #${first} to #${last} may be missing here`;
}

function notice(text) {
  $("notice-text").textContent = text;
  $("notice").hidden = false;
}

// ---- rooms ---------------------------------------------------------------

function roomFromHash() {
  const room = location.hash.slice(1); // a room name needs no decoding
  return ROOM_RE.test(room) ? room : "";
}

function join(room) {
  if (!ROOM_RE.test(room) || (room === chat.room && chat.sub) || !chat.client) return;
  chat.sub?.unsubscribe();
  chat.room = room;
  hook.room = room;
  hook.subscribed = "";
  hook.received = hook.lastSeq = hook.outOfOrder = 0;
  chat.unread.delete(room);
  addRoom(room, true);
  chat.shown.clear();
  chat.lastShown = null;
  chat.older = { loading: false, done: false };
  if (chat.batch) chat.batch.items.replaceChildren();
  for (const li of chat.pendingBySeq.values()) li.remove();
  chat.pendingBySeq.clear();
  $("messages").replaceChildren();
  $("empty").hidden = true;
  $("notice").hidden = true;
  $("room-name").textContent = room;
  $("room-topic").textContent = `chat.${room}`;
  $("intro-room").textContent = `#${room}`;
  $("text").placeholder = `Message #${room}`;
  document.title = `#${room} · whalesong chat`;
  history.replaceState(null, "", `${location.pathname}${location.search}#${room}`);

  const sub = chat.client.subscribe(`chat.${room}`, (ev) => {
    if (chat.sub === sub) showMessage(ev);
  }, { last: HISTORY });
  chat.sub = sub;
  sub.ready.then(() => {
    if (chat.sub !== sub) return;
    $("empty").hidden = chat.shown.size > 0;
    hook.subscribed = room;
  }, () => {});
  renderRooms();
}

function addRoom(room, remember) {
  chat.rooms.add(room);
  if (!remember || DEFAULT_ROOMS.includes(room)) return;
  const saved = loadRooms();
  if (!saved.includes(room)) {
    saved.push(room);
    localStorage.setItem(STORE.rooms, JSON.stringify(saved.slice(-20)));
  }
}

function loadRooms() {
  try {
    const rooms = JSON.parse(localStorage.getItem(STORE.rooms) || "[]");
    return Array.isArray(rooms) ? rooms.filter((r) => ROOM_RE.test(r)) : [];
  } catch {
    return [];
  }
}

function countUnread(ev) {
  const room = ev.topic.slice("chat.".length);
  if (!ROOM_RE.test(room) || (room === chat.room && chat.rooms.has(room))) return;
  chat.rooms.add(room);
  if (room !== chat.room) chat.unread.set(room, (chat.unread.get(room) || 0) + 1);
  renderRooms();
}

function renderRooms() {
  const order = (a, b) => {
    const ia = DEFAULT_ROOMS.indexOf(a), ib = DEFAULT_ROOMS.indexOf(b);
    if (ia >= 0 || ib >= 0) return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib);
    return a.localeCompare(b);
  };
  const items = [...chat.rooms].sort(order).map((room) => {
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.room = room;
    button.setAttribute("aria-current", String(room === chat.room));
    button.append(el("span", "hash", "#"), el("span", "name", room));
    const n = chat.unread.get(room);
    if (n) button.append(el("span", "unread", n > 99 ? "99+" : String(n)));
    button.addEventListener("click", () => join(room));
    const li = document.createElement("li");
    li.append(button);
    return li;
  });
  $("rooms").replaceChildren(...items);
}

// ---- messages ------------------------------------------------------------

// showMessage renders one event. Events that arrive together (a replay, a
// batch frame) are appended in one go at the end of the task, so a page that
// catches up on thousands of messages lays out once, not once per message.
function showMessage(ev) {
  hook.received++;
  if (ev.seq <= hook.lastSeq) hook.outOfOrder++;
  hook.lastSeq = Math.max(hook.lastSeq, ev.seq);

  if (!chat.batch) {
    chat.batch = { items: document.createDocumentFragment() };
    queueMicrotask(flushMessages);
  }
  const li = eventItem(ev, chat.lastShown);
  chat.lastShown = { nick: li.dataset.nick, time: Number(li.dataset.time) };
  chat.batch.items.append(li);
  chat.shown.add(ev.seq);
  chat.pendingBySeq.get(ev.seq)?.remove();
  chat.pendingBySeq.delete(ev.seq);
}

function flushMessages() {
  const { items } = chat.batch;
  chat.batch = null;
  const list = $("messages");
  list.append(items);
  while (list.childElementCount > MAX_SHOWN) {
    list.firstElementChild.remove();
    chat.older.done = false; // what left the page can be scrolled back to
  }
  $("empty").hidden = true;
  loadOlderIfNearTop();
}

// ---- scrolling back ------------------------------------------------------

// oldestShown is the seq of the oldest message on screen, 0 when none.
function oldestShown() {
  const li = $("messages").querySelector(".msg");
  return li ? Number(li.dataset.seq) : 0;
}

function nearTop() {
  const scroller = $("scroller");
  const top = scroller.getBoundingClientRect().top;
  return $("messages").getBoundingClientRect().top >= top - NEAR_TOP;
}

// loadOlderIfNearTop reads the page of the room's history before the
// oldest message on screen once the reader is near the top, and again while
// the screen is not full, until the server has nothing older.
function loadOlderIfNearTop() {
  const older = chat.older;
  const before = oldestShown();
  if (older.loading || older.done || !chat.client || !chat.sub || before <= 1 || !nearTop()) return;
  older.loading = true;
  const room = chat.room;
  chat.client.history(`chat.${room}`, { before, limit: HISTORY }).then((page) => {
    if (chat.older !== older) return; // another room meanwhile
    older.loading = false;
    hook.pages++;
    prependMessages(page.events.filter((ev) => ev.seq < oldestShown() && !chat.shown.has(ev.seq)));
    if (!page.more) older.done = true;
    loadOlderIfNearTop();
  }, (err) => {
    if (chat.older !== older) return;
    older.loading = false;
    if (err.code === "epoch_changed") older.done = true; // a first page of the new stream is what the room shows
    hook.errors.push(err.code || String(err.message));
  });
}

// prependMessages puts older events (oldest first) above what is shown.
function prependMessages(events) {
  if (events.length === 0) return;
  const items = document.createDocumentFragment();
  let prev = null;
  for (const ev of events) {
    const li = eventItem(ev, prev);
    prev = { nick: li.dataset.nick, time: Number(li.dataset.time) };
    items.append(li);
    chat.shown.add(ev.seq);
  }
  const list = $("messages");
  const first = list.firstElementChild;
  if (first?.classList.contains("msg")) {
    const same = first.dataset.nick === prev.nick && Number(first.dataset.time) - prev.time < GROUP_MS;
    first.classList.toggle("cont", same);
  }
  list.prepend(items);
  $("empty").hidden = true;
}

// eventItem renders an event as a message, grouped with prev ({nick, time}
// of the message before it) when the same nick wrote both within GROUP_MS.
function eventItem(ev, prev) {
  const nick = String(ev.data?.nick ?? "?").slice(0, 24) || "?";
  const text = String(ev.data?.text ?? "").slice(0, MAX_TEXT);
  const time = ev.time || new Date();
  const li = messageItem(nick, text, time);
  li.dataset.seq = String(ev.seq);
  if (prev && prev.nick === nick && time - prev.time < GROUP_MS) li.classList.add("cont");
  return li;
}

function messageItem(nick, text, time) {
  const li = el("li", "msg");
  li.dataset.nick = nick;
  li.dataset.time = String(time.getTime());
  const stamp = el("time", "", clock(time));
  stamp.dateTime = time.toISOString();
  stamp.title = FULL.format(time);
  const meta = el("div", "meta");
  meta.append(el("span", "nick", nick), stamp);
  const body = el("div", "body");
  body.append(meta, el("p", "text", text));
  li.append(avatar(nick), body);
  return li;
}

function avatar(nick) {
  let h = 0;
  for (const c of nick) h = (h * 31 + c.codePointAt(0)) >>> 0;
  return el("span", `avatar c${h % 8}`, [...nick][0] || "?");
}

// Formatters are built once: toLocale*String builds one per call, which
// costs more than the rest of rendering a message.
const HOUR_MINUTE = new Intl.DateTimeFormat([], { hour: "numeric", minute: "2-digit" });
const DAY = new Intl.DateTimeFormat([], { month: "short", day: "numeric" });
const FULL = new Intl.DateTimeFormat([], { dateStyle: "full", timeStyle: "medium" });

function clock(time) {
  const sameDay = DAY.format(time) === DAY.format(Date.now());
  const hm = HOUR_MINUTE.format(time);
  return sameDay ? hm : `${DAY.format(time)} ${hm}`;
}

function el(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

// The scroller is a reversed flex column, so the browser keeps it pinned to
// the newest message by itself (and leaves it alone while the reader has
// scrolled up): no layout is read per message. Its bottom is scrollTop 0.
function scrollDown() {
  $("scroller").scrollTop = 0;
}

// send publishes text to the current room. The line shows as "sending…"
// until the server has it; offline, the client queues it and sends it once
// the connection is back. It resolves to {seq} or {code, message}.
function send(raw) {
  const text = String(raw).trim().slice(0, MAX_TEXT);
  if (!text || !chat.client) return Promise.resolve({ code: "empty", message: "nothing to send" });
  const room = chat.room;
  const li = messageItem(chat.nick, text, new Date());
  $("outbox").append(li);
  scrollDown();
  return chat.client.publish(`chat.${room}`, { nick: chat.nick, text }).then((seq) => {
    if (chat.shown.has(seq) || room !== chat.room) li.remove();
    else chat.pendingBySeq.set(seq, li);
    return { seq };
  }, (err) => {
    li.classList.add("failed");
    li.querySelector("time").dataset.error = ` · not sent (${err.code || err.message}); click to dismiss`;
    li.addEventListener("click", () => li.remove(), { once: true });
    return { code: err.code || "", message: String(err.message) };
  });
}

// ---- nickname ------------------------------------------------------------

function renderMe() {
  $("me-nick").textContent = chat.nick;
  const a = avatar(chat.nick);
  $("me-avatar").className = a.className;
  $("me-avatar").textContent = a.textContent;
}

function validNick(nick) {
  return NICK_RE.test(nick) && nick.trim() === nick;
}

function askNick() {
  const dialog = $("join");
  $("join-nick").value = chat.nick;
  $("join-error").hidden = true;
  dialog.showModal();
}

function wire() {
  $("composer").addEventListener("submit", (e) => {
    e.preventDefault();
    const input = $("text");
    send(input.value);
    input.value = "";
    input.focus();
  });
  $("new-room").addEventListener("submit", (e) => {
    e.preventDefault();
    const input = $("new-room-name");
    const room = input.value.trim().toLowerCase().replace(/\s+/g, "-").replace(/[^a-z0-9_-]/g, "");
    if (ROOM_RE.test(room)) {
      input.value = "";
      join(room);
    }
  });
  $("notice-close").addEventListener("click", () => { $("notice").hidden = true; });
  let scrollQueued = false;
  $("scroller").addEventListener("scroll", () => {
    if (scrollQueued) return;
    scrollQueued = true;
    requestAnimationFrame(() => {
      scrollQueued = false;
      loadOlderIfNearTop();
    });
  }, { passive: true });
  $("change-nick").addEventListener("click", askNick);
  $("join").addEventListener("cancel", (e) => {
    if (!chat.client) e.preventDefault(); // no nick yet: nothing to go back to
  });
  $("join-form").addEventListener("submit", (e) => {
    const nick = $("join-nick").value.trim();
    if (!validNick(nick)) {
      e.preventDefault();
      $("join-error").textContent = "1 to 24 letters, digits, spaces, '-', '_' or '.'";
      $("join-error").hidden = false;
      return;
    }
    localStorage.setItem(STORE.nick, nick);
    if (nick !== chat.nick) start(nick);
  });
  window.addEventListener("hashchange", () => {
    const room = roomFromHash();
    if (room && chat.client) join(room);
  });
}

function main() {
  for (const room of loadRooms()) chat.rooms.add(room);
  wire();
  renderRooms();
  const fromURL = new URLSearchParams(location.search).get("nick");
  const nick = fromURL ?? localStorage.getItem(STORE.nick) ?? "";
  if (validNick(nick)) {
    start(nick);
    $("text").focus();
  } else {
    askNick();
  }
}

main();
