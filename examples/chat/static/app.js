// whalesong chat: the page. It talks to the server only through the
// whalesong client: one subscription for the room on screen (it starts with
// the room's last 50 messages) and one live subscription to chat.* that
// counts unread messages and discovers rooms other people open.
import { connect } from "/whalesong.js";

const HISTORY = 50; // messages shown when joining a room
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
};

// window.__chat is a small read-mostly hook for debugging and for the
// browser tests: the connection state as the client reported it, every gap,
// and a count of what the room's handler received and in which order.
const hook = {
  state: "connecting",
  states: [],
  gaps: [],
  errors: [],
  room: "",
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

function onGap({ pattern }) {
  hook.gaps.push(pattern);
  if (pattern !== `chat.${chat.room}`) return;
  hook.lastSeq = 0; // a new epoch numbers its events from 1 again
  const li = document.createElement("li");
  li.className = "divider";
  li.textContent = "some messages may be missing here";
  chat.lastShown = null;
  if (chat.batch) flushMessages(); // the divider goes after what came before the gap
  $("messages").append(li);
  notice("Some messages of this room could not be recovered after the connection dropped.");
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
  hook.received = hook.lastSeq = hook.outOfOrder = 0;
  chat.unread.delete(room);
  addRoom(room, true);
  chat.shown.clear();
  chat.lastShown = null;
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
    if (chat.sub === sub) $("empty").hidden = chat.shown.size > 0;
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
  const nick = String(ev.data?.nick ?? "?").slice(0, 24) || "?";
  const text = String(ev.data?.text ?? "").slice(0, MAX_TEXT);
  const time = ev.time || new Date();
  const li = messageItem(nick, text, time);
  li.dataset.seq = String(ev.seq);
  const prev = chat.lastShown;
  if (prev && prev.nick === nick && time - prev.time < GROUP_MS) li.classList.add("cont");
  chat.lastShown = { nick, time };
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
  while (list.childElementCount > MAX_SHOWN) list.firstElementChild.remove();
  $("empty").hidden = true;
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
