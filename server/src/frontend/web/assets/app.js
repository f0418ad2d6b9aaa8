// chat-server's web page: one WebSocket at /ws speaking the line protocol of
// PROTOCOL.md (one line per text message each way), shown as a chat.
//
// How this file is organised, top to bottom:
//   1. settings and the page's state (what the user wants, what the server
//      confirmed, the socket and its phase);
//   2. remembering the nick and room (localStorage);
//   3. reading server lines: parseLine() turns a line into {kind, ...};
//   4. drawing: every text from the network goes in with textContent or a
//      text node, never as HTML; links, times and nick colours;
//   5. the log: rows, history blocks (deduplicated after a reconnect),
//      scrolling, the unread count in the title, notifications;
//   6. handling a line: what each notice changes (nick, room, topic) and
//      the rejoin after (re)connecting;
//   7. the connection: connect, close, reconnect with backoff and jitter;
//   8. sending: the composer, the local echo, a queue while disconnected;
//   9. the nick-and-room dialog, the buttons, and startup.
'use strict';

// ---------------------------------------------------------------------------
// 1. Settings and state

/** Reconnect delays: 1 s doubling up to 30 s, each times a jitter factor. */
const RETRY_FIRST_MS = 1000;
const RETRY_MAX_MS = 30000;
/** A connection that stayed up this long starts the backoff again from 1 s. */
const STABLE_MS = 10000;
/** The server's default line limit (--max-line); learned from its error. */
const DEFAULT_MAX_LINE = 4096;
/** Rows kept in the page; older ones are dropped so memory stays bounded. */
const MAX_ROWS = 2000;
/** Chat lines remembered per room to recognise a replay's repeats. */
const SEEN_PER_ROOM = 500;
/** Replayed lines come in a burst; a pause this long ends the burst. */
const REPLAY_SETTLE_MS = 250;
/** Lines typed while disconnected that wait to be sent when back. */
const MAX_QUEUED = 50;
/** Lines the up and down arrows recall. */
const MAX_RECALL = 50;
/** Nick colours: CSS classes nick-0 .. nick-(N-1). */
const NICK_COLOURS = 10;
/** Where the nick and room are remembered. */
const STORE_NICK = 'chat.nick';
const STORE_ROOM = 'chat.room';
const STORE_NOTIFY = 'chat.notify';

const $ = (id) => document.getElementById(id);
const ui = {
  roomName: $('room-name'), topic: $('topic'), status: $('status'), statusText: $('status-text'),
  retry: $('retry'), notify: $('notify'), notifyText: $('notify-text'), me: $('me'),
  meNick: $('me-nick'), log: $('log'), jump: $('jump'), composer: $('composer'),
  input: $('input'), setup: $('setup'), setupForm: $('setup-form'), setupNick: $('setup-nick'),
  setupRoom: $('setup-room'), setupError: $('setup-error'), setupCancel: $('setup-cancel'),
};

const state = {
  /** What the user asked for: taken again after every reconnect. */
  want: { nick: null, room: null, key: null },
  /** What the server confirmed on this connection. */
  now: { nick: null, room: null },
  /** The open socket, if any; events of older sockets are ignored. */
  ws: null,
  /** 'offline' | 'connecting' | 'joining' (rejoin under way) | 'ready' | 'left' */
  phase: 'offline',
  /** Whether a connection ever got ready: the next one is a reconnect. */
  wasReady: false,
  readyAt: 0,
  /** Answers still due to the rejoin commands, oldest first: 'nick' | 'join'. */
  rejoinDue: [],
  /** While our /join after the welcome is on its way, the lobby's lines are skipped. */
  inTransit: false,
  attempts: 0,
  retryTimer: 0,
  /** The user said /quit: do not reconnect by ourselves. */
  quitting: false,
  maxLine: DEFAULT_MAX_LINE,
  queue: [],
  /** The key of a typed `/join ROOM KEY`, kept once ROOM is confirmed. */
  joinKey: null,
  /** Replayed lines held until the burst ends. auto: after a join, so deduplicated. */
  replay: { lines: [], auto: false, room: null, timer: 0 },
  /** Replays are automatic right after the welcome or a join. */
  expectReplay: false,
  /** Per room (lower case): keys of the chat lines shown, oldest first. */
  seen: new Map(),
  unread: 0,
  notifyOn: false,
  recall: [],
  recallAt: 0,
};

// ---------------------------------------------------------------------------
// 2. Remembering the nick and room

function load(key) {
  try { return localStorage.getItem(key); } catch { return null; }
}

function save(key, value) {
  try {
    if (value === null) localStorage.removeItem(key);
    else localStorage.setItem(key, value);
  } catch { /* storage may be off; the page still works for this visit */ }
}

const NICK_RE = /^[A-Za-z][A-Za-z0-9_-]{0,23}$/;
const ROOM_RE = /^#[A-Za-z0-9_-]{1,32}$/;

/** `rust` or `#rust` as `#rust`; null if it is not a valid room name. */
function roomName(text) {
  const name = text.trim().startsWith('#') ? text.trim() : '#' + text.trim();
  return ROOM_RE.test(name) ? name : null;
}

const same = (a, b) => a !== null && b !== null && a.toLowerCase() === b.toLowerCase();

// ---------------------------------------------------------------------------
// 3. Reading server lines (PROTOCOL.md, "Server to client")

const REPLAYED = /^\[(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)\] (.*)$/;

/** One chat shape: message, action, private in or out; null if none. */
function parseChat(line) {
  let m;
  if ((m = /^<([^ >]+)> (.*)$/.exec(line))) return { kind: 'message', nick: m[1], text: m[2] };
  if ((m = /^-> \*([^ *]+)\* (.*)$/.exec(line))) return { kind: 'private-out', nick: m[1], text: m[2] };
  if ((m = /^\* ([^ *]+)(?: (.*))?$/.exec(line))) return { kind: 'action', nick: m[1], text: m[2] || '' };
  if ((m = /^\*([^ *]+)\* (.*)$/.exec(line))) return { kind: 'private-in', nick: m[1], text: m[2] };
  return null;
}

/** A server line as {kind, nick?, text, at?, history?}. Never throws. */
function parseLine(line) {
  const replayed = REPLAYED.exec(line);
  if (replayed) {
    const inner = parseChat(replayed[2]);
    const at = new Date(replayed[1]);
    if (inner && (inner.kind === 'message' || inner.kind === 'action') && !isNaN(at)) {
      return { ...inner, history: true, at };
    }
  }
  const chat = parseChat(line);
  if (chat) return chat;
  if (line.startsWith('-- ')) return { kind: 'notice', text: line.slice(3) };
  if (line.startsWith('!! ')) return { kind: 'error', text: line.slice(3) };
  return { kind: 'other', text: line };
}

/** Notices that change what the page shows, each with what it carries. */
const NOTICES = {
  welcome: /^welcome to .*, (\S+)! you are in (#\S+?);/,
  renamed: /^you are now known as (\S+)$/,
  joined: /^you joined (#\S+)$/,
  topic: /^topic of (#\S+): (.*) \(set by \S+ at \S+\)$/,
  noTopic: /^(#\S+) has no topic$/,
  topicSet: /^\S+ set the topic of (#\S+): (.*)$/,
  kicked: /^(\S+) was kicked from (#\S+) by /,
  presence: /^\S+ (joined #|left #|is now known as )/,
};

// ---------------------------------------------------------------------------
// 4. Drawing (text only: textContent and text nodes, never HTML)

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/** A stable colour class for a nick: FNV-1a of its lower case, mod N. */
function nickClass(nick) {
  let hash = 0x811c9dc5;
  for (const ch of nick.toLowerCase()) {
    hash ^= ch.codePointAt(0);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return 'nick nick-' + (hash % NICK_COLOURS);
}

const pad = (n) => String(n).padStart(2, '0');

/** HH:MM in local time, with the date in front when it is not today. */
function timeLabel(at) {
  const hhmm = pad(at.getHours()) + ':' + pad(at.getMinutes());
  if (at.toDateString() === new Date().toDateString()) return hhmm;
  return at.toLocaleDateString(undefined, { month: 'short', day: 'numeric' }) + ' ' + hhmm;
}

function timeElement(at) {
  const time = el('time', 'time', timeLabel(at));
  time.dateTime = at.toISOString();
  time.title = at.toLocaleString();
  return time;
}

const URL_RE = /\bhttps?:\/\/[^\s<>"]+/gi;
const TRAILING = /[.,;:!?'"\]}>]+$/;

/** The http(s) URL a match stands for, trimmed of trailing punctuation; null if not one. */
function linkTarget(match) {
  let text = match.replace(TRAILING, '');
  // A closing parenthesis belongs to the link only if it opened one: (see https://x/y)
  while (text.endsWith(')') && (text.match(/\(/g) || []).length < (text.match(/\)/g) || []).length) {
    text = text.slice(0, -1);
  }
  try {
    const url = new URL(text);
    return url.protocol === 'http:' || url.protocol === 'https:' ? { text, href: url.href } : null;
  } catch {
    return null;
  }
}

/** Appends text to parent, http and https URLs as links that open a new tab. */
function appendText(parent, text) {
  let from = 0;
  for (const match of text.matchAll(URL_RE)) {
    const link = linkTarget(match[0]);
    if (!link) continue;
    parent.append(document.createTextNode(text.slice(from, match.index)));
    const a = el('a', 'link', link.text);
    a.href = link.href;
    a.target = '_blank';
    a.rel = 'noopener noreferrer';
    parent.append(a);
    from = match.index + link.text.length;
  }
  parent.append(document.createTextNode(text.slice(from)));
}

/** Whether text names nick as a word (letters, digits, _ and - make words). */
function mentions(text, nick) {
  if (!nick) return false;
  const escaped = nick.replace(/[-_]/g, '\\$&');
  return new RegExp('(^|[^A-Za-z0-9_-])' + escaped + '($|[^A-Za-z0-9_-])', 'i').test(text);
}

/** A badge, and the words a screen reader needs after it (the badge's gap is only CSS). */
function tag(className, text, after = ' ') {
  return [el('span', className, text), el('span', 'visually-hidden', after)];
}

/** The row for a parsed line: time, then who, then what. */
function renderRow(p, at) {
  const row = el('li', 'row kind-' + p.kind);
  row.append(timeElement(at));
  const body = el('div', 'body');
  row.append(body);
  if (p.kind === 'message' || p.kind === 'action') {
    if (p.kind === 'action') body.append(el('span', 'star', '* '));
    body.append(el('span', nickClass(p.nick), p.nick));
    body.append(el('span', p.kind === 'action' ? 'gap' : 'visually-hidden', p.kind === 'action' ? ' ' : ': '));
  } else if (p.kind === 'private-in') {
    body.append(...tag('tag', 'private'), el('span', nickClass(p.nick), p.nick));
    body.append(el('span', 'visually-hidden', ': '));
  } else if (p.kind === 'private-out') {
    body.append(...tag('tag', 'private to'), el('span', nickClass(p.nick), p.nick));
    body.append(el('span', 'visually-hidden', ': '));
  } else if (p.kind === 'error') {
    body.append(...tag('tag tag-error', 'error', ': '));
  } else if (p.kind === 'command') {
    body.append(el('span', 'prompt', '› '));
  }
  const text = el('span', 'text');
  appendText(text, p.text);
  body.append(text);
  if (p.own) row.classList.add('own');
  if (p.history) row.classList.add('history');
  if (p.presence) row.classList.add('presence');
  if (p.mention) row.classList.add('mention');
  return row;
}

// ---------------------------------------------------------------------------
// 5. The log, history blocks, scrolling, unread count, notifications

function nearBottom() {
  return ui.log.scrollHeight - ui.log.scrollTop - ui.log.clientHeight < 48;
}

function scrollToEnd() {
  ui.log.scrollTop = ui.log.scrollHeight;
  ui.jump.hidden = true;
}

/** Adds rows at the end, keeping the view at the bottom if it was there. */
function appendRows(rows) {
  const follow = nearBottom();
  ui.log.append(...rows);
  while (ui.log.childElementCount > MAX_ROWS) ui.log.firstElementChild.remove();
  if (follow) scrollToEnd();
  else ui.jump.hidden = false;
}

function show(p, at = new Date()) {
  appendRows([renderRow(p, at)]);
}

/** A line of the page's own (connection state), not from the server. */
function status(text) {
  show({ kind: 'status', text });
}

const seenKey = (p) => p.kind + '\u0000' + p.nick.toLowerCase() + '\u0000' + p.text;

function remember(room, p) {
  if (!room) return;
  const key = room.toLowerCase();
  const list = state.seen.get(key) || [];
  list.push(seenKey(p));
  if (list.length > SEEN_PER_ROOM) list.splice(0, list.length - SEEN_PER_ROOM);
  state.seen.set(key, list);
}

/**
 * The replayed lines not shown yet: the replay's oldest lines that we saw
 * (a run of the room's lines seen here) are dropped, the rest kept.
 */
function unseen(room, lines) {
  const seen = room ? state.seen.get(room.toLowerCase()) || [] : [];
  const keys = lines.map(seenKey);
  let skip = 0;
  for (let start = 0; start < seen.length; start++) {
    let n = 0;
    while (n < keys.length && start + n < seen.length && seen[start + n] === keys[n]) n++;
    if (n > skip && (start + n === seen.length || n === keys.length)) skip = n;
  }
  return lines.slice(skip);
}

function holdReplayed(p) {
  const replay = state.replay;
  if (replay.lines.length === 0) {
    replay.auto = state.expectReplay;
    replay.room = state.now.room;
  }
  replay.lines.push(p);
  clearTimeout(replay.timer);
  replay.timer = setTimeout(flushReplay, REPLAY_SETTLE_MS);
}

/** Shows the held replayed lines under an "earlier messages" divider. */
function flushReplay() {
  const replay = state.replay;
  clearTimeout(replay.timer);
  if (replay.lines.length === 0) return;
  const lines = replay.auto ? unseen(replay.room, replay.lines) : replay.lines;
  replay.lines = [];
  if (lines.length === 0) return;
  const divider = el('li', 'divider');
  divider.setAttribute('role', 'separator');
  divider.append(el('span', '', 'earlier messages'));
  const rows = [divider];
  for (const p of lines) {
    p.mention = !same(p.nick, state.now.nick) && mentions(p.text, state.now.nick);
    rows.push(renderRow(p, p.at));
    remember(replay.room, p);
  }
  appendRows(rows);
}

function pageHidden() {
  return document.visibilityState === 'hidden';
}

function updateTitle() {
  const place = state.now.room || 'chat';
  const count = state.unread > 0 ? '(' + state.unread + ') ' : '';
  document.title = count + (place === 'chat' ? 'chat' : place + ' - chat');
}

/** A live line from someone else while the tab is hidden: count it, maybe notify. */
function noteUnread(p) {
  if (!pageHidden()) return;
  state.unread += 1;
  updateTitle();
  if (p.kind === 'private-in' || p.mention) notify(p);
}

function notify(p) {
  if (!state.notifyOn || !('Notification' in window) || Notification.permission !== 'granted') return;
  const title = p.kind === 'private-in' ? p.nick + ' (private)' : p.nick + ' in ' + (state.now.room || 'chat');
  try {
    const note = new Notification(title, { body: p.text, tag: 'chat-server' });
    note.onclick = () => { window.focus(); note.close(); };
  } catch { /* some browsers only notify from a service worker */ }
}

function onVisibility() {
  if (!pageHidden() && state.unread > 0) {
    state.unread = 0;
    updateTitle();
  }
}

// ---------------------------------------------------------------------------
// 6. Handling a server line

function handleLine(line) {
  const p = parseLine(line);
  if (p.history) {
    if (!state.inTransit) holdReplayed(p);
    return;
  }
  flushReplay();
  if (p.kind === 'notice') return handleNotice(p);
  if (p.kind === 'error') return handleError(p);
  state.expectReplay = false;
  if (state.inTransit && (p.kind === 'message' || p.kind === 'action')) return;
  const live = p.kind === 'message' || p.kind === 'action' || p.kind === 'private-in';
  if (live) p.mention = p.kind === 'private-in' || mentions(p.text, state.now.nick);
  if (p.kind === 'message' || p.kind === 'action') remember(state.now.room, p);
  show(p);
  if (live) noteUnread(p);
}

function handleNotice(p) {
  const text = p.text;
  let m;
  const reconnecting = state.wasReady;
  if ((m = NOTICES.welcome.exec(text))) {
    setPlace(m[1], m[2]);
    state.expectReplay = true;
    if (!reconnecting) show(p);
    return rejoin();
  }
  if ((m = NOTICES.renamed.exec(text))) {
    setPlace(m[1], state.now.room);
    state.want.nick = m[1];
    save(STORE_NICK, m[1]);
    if (answered('nick') && reconnecting) return;
    return show(p);
  }
  if ((m = NOTICES.joined.exec(text))) {
    setPlace(state.now.nick, m[1]);
    setTopic(null);
    state.want.room = m[1];
    if (state.joinKey && same(state.joinKey.room, m[1])) state.want.key = state.joinKey.key;
    state.joinKey = null;
    save(STORE_ROOM, m[1]);
    state.expectReplay = true;
    state.inTransit = false;
    if (answered('join') && reconnecting) return;
    return show(p);
  }
  if (state.inTransit) return; // the lobby's topic and comings and goings, on our way out
  if ((m = NOTICES.topic.exec(text)) && same(m[1], state.now.room)) setTopic(m[2]);
  else if ((m = NOTICES.noTopic.exec(text)) && same(m[1], state.now.room)) setTopic(null);
  else if ((m = NOTICES.topicSet.exec(text)) && same(m[1], state.now.room)) setTopic(m[2]);
  else state.expectReplay = false;
  if ((m = NOTICES.kicked.exec(text)) && same(m[1], state.now.nick)) setPlace(state.now.nick, null);
  if (text === 'bye') state.quitting = true;
  p.presence = NOTICES.presence.test(text);
  show(p);
}

function handleError(p) {
  state.expectReplay = false;
  const limit = /^line too long \(max (\d+) bytes\)/.exec(p.text);
  if (limit) state.maxLine = Number(limit[1]);
  const due = state.rejoinDue[0];
  if (due) {
    answered(due);
    if (due === 'join') state.inTransit = false;
  }
  show(p);
}

/** Records the server's answer to a rejoin command; true if it was one. */
function answered(what) {
  if (state.rejoinDue[0] !== what) return false;
  state.rejoinDue.shift();
  if (state.rejoinDue.length === 0) becomeReady();
  return true;
}

function setPlace(nick, room) {
  state.now.nick = nick;
  state.now.room = room;
  ui.roomName.textContent = room || 'no room';
  ui.meNick.textContent = nick || '';
  ui.me.hidden = !nick;
  ui.input.placeholder = room ? 'Message ' + room + ' (or /help)' : 'Type /join ROOM';
  updateTitle();
}

function setTopic(topic) {
  ui.topic.textContent = topic || '';
  ui.topic.hidden = !topic;
  ui.topic.title = topic || '';
}

/** After the welcome: take the wanted nick, then the wanted room. */
function rejoin() {
  const send = (line) => state.ws && state.ws.send(line);
  state.phase = 'joining';
  state.rejoinDue = [];
  const { nick, room, key } = state.want;
  if (nick && nick !== state.now.nick) {
    send('/nick ' + nick);
    state.rejoinDue.push('nick');
  }
  if (room && !same(room, state.now.room)) {
    send('/join ' + room + (key ? ' ' + key : ''));
    state.rejoinDue.push('join');
    state.inTransit = true;
  }
  if (state.rejoinDue.length === 0) becomeReady();
}

function becomeReady() {
  state.phase = 'ready';
  state.readyAt = Date.now();
  setStatus('online', 'Connected');
  if (state.wasReady) {
    status('Back: you are ' + state.now.nick + (state.now.room ? ' in ' + state.now.room : '') + '.');
  }
  state.wasReady = true;
  sendQueued();
}

// ---------------------------------------------------------------------------
// 7. The connection

function socketUrl() {
  return (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws';
}

function setStatus(kind, text) {
  ui.status.dataset.state = kind;
  ui.statusText.textContent = text;
  ui.retry.hidden = kind !== 'waiting' && kind !== 'left';
}

function connect() {
  clearTimeout(state.retryTimer);
  if (state.ws) state.ws.close();
  state.quitting = false;
  state.phase = 'connecting';
  setStatus('connecting', state.wasReady ? 'Reconnecting…' : 'Connecting…');
  let ws;
  try {
    ws = new WebSocket(socketUrl());
  } catch {
    return scheduleReconnect();
  }
  state.ws = ws;
  ws.onmessage = (event) => { if (ws === state.ws) handleLine(String(event.data)); };
  ws.onclose = (event) => { if (ws === state.ws) closed(event); };
}

/** The socket closed: say why, and reconnect unless the user left. */
function closed(event) {
  flushReplay();
  const wasUp = state.phase === 'ready' || state.phase === 'joining';
  state.ws = null;
  state.inTransit = false;
  state.rejoinDue = [];
  if (state.quitting) {
    state.phase = 'left';
    setStatus('left', 'Left the chat');
    status('You left the chat. Press "Reconnect now" to come back.');
    return;
  }
  if (wasUp && Date.now() - state.readyAt > STABLE_MS) state.attempts = 0;
  if (wasUp) {
    status(event.code === 1001 ? 'The server is going away (restarting?).' : 'Connection lost.');
  }
  scheduleReconnect();
}

/** 1 s, 2 s, 4 s ... 30 s, each between 0.75 and 1.25 times that. */
function retryDelay(attempt) {
  const base = Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** Math.min(attempt, 15));
  return Math.round(Math.min(RETRY_MAX_MS, base * (0.75 + Math.random() * 0.5)));
}

function scheduleReconnect() {
  const delay = retryDelay(state.attempts);
  state.attempts += 1;
  state.phase = 'offline';
  const seconds = Math.max(1, Math.round(delay / 1000));
  setStatus('waiting', 'Reconnecting in ' + seconds + ' s');
  if (state.attempts === 1 || state.attempts % 4 === 0) {
    status('Reconnecting in ' + seconds + ' s…');
  }
  clearTimeout(state.retryTimer);
  state.retryTimer = setTimeout(connect, delay);
}

// ---------------------------------------------------------------------------
// 8. Sending

const utf8Length = (text) => new TextEncoder().encode(text).length;

/** What the others see for a line we send (the server does not echo it). */
function ownEcho(line) {
  const nick = state.now.nick || 'me';
  if (line.startsWith('//')) return { kind: 'message', nick, text: line.slice(1), own: true };
  const me = /^\/me\s+(\S.*)$/i.exec(line);
  if (me) return { kind: 'action', nick, text: me[1], own: true };
  if (line.startsWith('/')) return { kind: 'command', text: line };
  return { kind: 'message', nick, text: line, own: true };
}

/** Follows what a typed command means for the page itself. */
function noteCommand(line) {
  const word = (line.split(/\s+/)[0] || '').toLowerCase();
  if (word === '/quit') state.quitting = true;
  if (word === '/join') {
    const [, room, key] = line.trim().split(/\s+/);
    const name = room ? roomName(room) : null;
    state.joinKey = name && key ? { room: name, key } : null;
  }
}

function sendNow(line) {
  flushReplay();
  state.ws.send(line);
  noteCommand(line);
  const echo = ownEcho(line);
  if (echo.kind !== 'command') remember(state.now.room, echo);
  state.expectReplay = false;
  show(echo);
}

function sendQueued() {
  while (state.queue.length > 0 && state.phase === 'ready') sendNow(state.queue.shift());
}

/** A line typed by the user, sent as typed (PROTOCOL.md), or refused here first. */
function submit(line) {
  if (line.trim() === '') return true;
  const size = utf8Length(line);
  if (size > state.maxLine) {
    show({ kind: 'error', text: 'this line is ' + size + ' bytes; the server takes at most ' + state.maxLine + '. Nothing was sent.' });
    return false;
  }
  if (state.phase === 'left' && /^\/quit\b/i.test(line)) return true;
  if (state.phase !== 'ready') {
    if (state.queue.length >= MAX_QUEUED) {
      show({ kind: 'error', text: 'not connected, and ' + MAX_QUEUED + ' lines already wait; nothing more is kept.' });
      return false;
    }
    state.queue.push(line);
    status('Not connected: "' + line + '" will be sent when the page is back.');
    if (state.phase === 'left') connect();
    return true;
  }
  sendNow(line);
  return true;
}

function onComposerSubmit(event) {
  event.preventDefault();
  const line = ui.input.value;
  if (!submit(line)) return;
  if (line.trim() !== '') {
    state.recall.push(line);
    if (state.recall.length > MAX_RECALL) state.recall.shift();
  }
  state.recallAt = state.recall.length;
  ui.input.value = '';
  scrollToEnd();
}

/** Up and down recall the lines sent before, as in a shell. */
function onComposerKey(event) {
  if (event.key !== 'ArrowUp' && event.key !== 'ArrowDown') return;
  if (event.isComposing || state.recall.length === 0) return;
  const next = state.recallAt + (event.key === 'ArrowUp' ? -1 : 1);
  if (next < 0 || next > state.recall.length) return;
  event.preventDefault();
  state.recallAt = next;
  ui.input.value = state.recall[next] || '';
}

// ---------------------------------------------------------------------------
// 9. The dialog, the buttons, startup

function openSetup(firstVisit) {
  ui.setupNick.value = state.want.nick || '';
  ui.setupRoom.value = state.want.room || '#lobby';
  ui.setupError.textContent = '';
  ui.setupCancel.hidden = firstVisit;
  ui.setup.dataset.first = firstVisit ? 'yes' : 'no';
  ui.setup.showModal();
  ui.setupNick.focus();
}

function onSetupSubmit(event) {
  event.preventDefault();
  const nick = ui.setupNick.value.trim();
  const room = roomName(ui.setupRoom.value);
  if (!NICK_RE.test(nick)) {
    ui.setupError.textContent = 'A nick is 1 to 24 letters, digits, _ or -, and starts with a letter.';
    return ui.setupNick.focus();
  }
  if (!room) {
    ui.setupError.textContent = 'A room name is 1 to 32 letters, digits, _ or -.';
    return ui.setupRoom.focus();
  }
  ui.setup.close();
  if (ui.setup.dataset.first === 'yes') {
    state.want = { nick, room, key: null };
    save(STORE_NICK, nick);
    save(STORE_ROOM, room);
    connect();
  } else {
    if (nick !== state.now.nick) submit('/nick ' + nick);
    if (!same(room, state.now.room)) submit('/join ' + room);
  }
  ui.input.focus();
}

function onSetupCancel(event) {
  // The first visit has to choose: there is nothing behind the dialog yet.
  if (ui.setup.dataset.first === 'yes') event.preventDefault();
}

function showNotifyButton() {
  ui.notify.hidden = !('Notification' in window);
  const on = state.notifyOn && 'Notification' in window && Notification.permission === 'granted';
  ui.notify.setAttribute('aria-pressed', String(on));
  ui.notifyText.textContent = on ? 'Notifying' : 'Notify me';
  ui.notify.title = on
    ? 'Desktop notifications for private messages and mentions while this tab is hidden: on'
    : 'Get a desktop notification for private messages and mentions while this tab is hidden';
}

async function onNotifyClick() {
  if (state.notifyOn) {
    state.notifyOn = false;
  } else if (!window.isSecureContext) {
    status('Notifications need the page over HTTPS, or on localhost.');
  } else {
    const permission = Notification.permission === 'default'
      ? await Notification.requestPermission() : Notification.permission;
    state.notifyOn = permission === 'granted';
    if (permission === 'denied') status('Notifications are blocked for this page in the browser\'s settings.');
  }
  save(STORE_NOTIFY, state.notifyOn ? 'on' : null);
  showNotifyButton();
}

function start() {
  ui.composer.addEventListener('submit', onComposerSubmit);
  ui.input.addEventListener('keydown', onComposerKey);
  ui.setupForm.addEventListener('submit', onSetupSubmit);
  ui.setup.addEventListener('cancel', onSetupCancel);
  ui.setupCancel.addEventListener('click', () => ui.setup.close());
  ui.me.addEventListener('click', () => openSetup(false));
  ui.retry.addEventListener('click', () => { state.attempts = 0; connect(); });
  ui.notify.addEventListener('click', onNotifyClick);
  ui.jump.addEventListener('click', scrollToEnd);
  ui.log.addEventListener('scroll', () => { if (nearBottom()) ui.jump.hidden = true; });
  document.addEventListener('visibilitychange', onVisibility);
  window.addEventListener('online', () => { if (state.phase === 'offline') connect(); });

  state.notifyOn = load(STORE_NOTIFY) === 'on';
  showNotifyButton();
  const nick = load(STORE_NICK);
  const room = load(STORE_ROOM);
  state.want = {
    nick: nick && NICK_RE.test(nick) ? nick : null,
    room: room ? roomName(room) : null,
    key: null,
  };
  if (state.want.nick) {
    connect();
    ui.input.focus();
  } else {
    openSetup(true);
  }
}

start();
