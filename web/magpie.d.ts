// TypeScript declarations of magpie.js, the Magpie JavaScript SDK,
// written by hand. Every export of magpie.js is declared here and nothing
// else (sdk_test/types.test.mjs checks both ways, and every public member
// of its classes). Field names in camelCase are the SDK's own shapes; the
// snake_case ones are the server's JSON, as docs/api.md shows it.
// Needs the DOM library or @types/node (EventTarget, CustomEvent, Blob,
// FormData).

// ---- codes and errors ----------------------------------------------------

/** Each code's name and number (docs/protocol.md#codes), generated from proto/wire/codes.json. */
export declare const Codes: Readonly<{
  internal: 1;
  bad_request: 2;
  unauthenticated: 3;
  forbidden: 4;
  not_found: 5;
  conflict: 6;
  too_large: 7;
  rate_limited: 8;
  unavailable: 9;
  unknown_command: 10;
  auth_timeout: 11;
  already_authenticated: 12;
  not_authenticated: 13;
  slow_consumer: 14;
  replaced: 15;
  logged_out: 16;
  draining: 17;
  heartbeat_timeout: 18;
  protocol_error: 19;
  not_member: 20;
  seq_out_of_range: 21;
  blocked: 22;
  device_limit: 23;
  server_shutdown: 24;
  invalid_credentials: 25;
  session_expired: 26;
}>;

export type CodeName = keyof typeof Codes;

/** What a client does about an error code. */
export type CodeAction = "retry" | "relogin" | "reconnect" | "give_up";

/** A failure the server reported, over HTTP or the socket. */
export declare class MagpieError extends Error {
  /** code: the number, or its name; message defaults to the code's name. */
  constructor(code: number | CodeName, message?: string, opts?: { status?: number; retryAfterMs?: number });
  name: "MagpieError";
  /** The number from the code table (0 if unknown). */
  code: number;
  /** The code's name, e.g. "not_found". */
  codeName: string;
  /** The HTTP status (0 over the socket). */
  status: number;
  retryAfterMs: number;
  /** Set on the error of a kick: whether the kick said to reconnect. */
  kickReconnect?: boolean;
  get action(): CodeAction;
}

/** Rejects requests whose connection closed before an answer. */
export declare class ConnectionLost extends Error {
  constructor(why?: string);
  name: "ConnectionLost";
  /** Set when a kick that says reconnect ended the connection. */
  retryAfterMs?: number;
  kickCode?: number;
}

// ---- values --------------------------------------------------------------

export declare const State: Readonly<{
  idle: "idle";
  connecting: "connecting";
  ready: "ready";
  reconnecting: "reconnecting";
  closed: "closed";
}>;

export type ConnectionState = (typeof State)[keyof typeof State];

/** A fresh client_msg_id: "w-" and 24 hex digits. */
export declare function newID(): string;

/** Turns protojson's 64-bit strings (and omitted zeroes) into numbers. */
export declare function num(v: string | number | null | undefined): number;

/** Converts a wire Message (socket protojson or HTTP JSON) into the shape events carry. */
export declare function normMessage(m: WireMessage): Message;

/** Converts a wire notice (protojson) into the notice event's detail. */
export declare function normNotice(n: WireNotice): NoticeEvent;

/** A typing client repeats its notice every TYPING_EVERY_MS (3000). */
export declare const TYPING_EVERY_MS: number;
/** A receiver shows a typing notice for TYPING_SHOW_MS (6000) unless renewed. */
export declare const TYPING_SHOW_MS: number;

/** The conversation id of two users' private chat: p_<lower id>_<higher id>. */
export declare function privateID(a: number, b: number): string;

// ---- messages --------------------------------------------------------------

export type MessageKind = "text" | "file" | "recall" | "edit" | "event" | "notification";

export interface FileRef {
  id: string;
  name: string;
  contentType: string;
  size: number;
}

/** A group event's details (a message of kind "event"). */
export interface GroupEvent {
  type?: string;
  usernames?: string[];
  detail?: string;
  [field: string]: unknown;
}

/** A message as "message" and "transient" events, history and search carry it. */
export interface Message {
  conversationId: string;
  /** 0 for transient messages (broadcasts, notifications). */
  seq: number;
  senderId: number;
  sender: string;
  clientMsgId: string;
  text: string;
  /** Unix ms, set by the server. */
  sentAt: number;
  /** Private chats: the other user's name (as the server names it). */
  peer: string;
  kind: MessageKind;
  /** The message a recall, edit or reply refers to. */
  refSeq: number;
  file: FileRef | null;
  event: GroupEvent | null;
  transient: boolean;
  editedAt: number;
  recalled: boolean;
}

/** A message as the server sends it (protojson on the socket, JSON over HTTP). */
export interface WireMessage {
  conversation_id?: string;
  seq?: string | number;
  sender_id?: string | number;
  sender?: string;
  client_msg_id?: string;
  text?: string;
  sent_at?: string | number;
  peer?: string;
  kind?: string | number;
  ref_seq?: string | number;
  file?: { id: string; name?: string; content_type?: string; size?: string | number };
  event?: GroupEvent;
  transient?: boolean;
  edited_at?: string | number;
  recalled?: boolean;
  [field: string]: unknown;
}

/** send()'s answer once the server committed the message. */
export interface SendAck {
  conversationId: string;
  seq: number;
  clientMsgId: string;
  sentAt: number;
  /** true when the server had this client_msg_id already: seq is the original one. */
  duplicate: boolean;
}

export interface SendRequest {
  toUser?: string;
  toGroup?: string;
  text?: string;
  fileId?: string;
  /** The upload's answer (uploadFile); its id is sent and its name kept on the message. */
  file?: UploadedFile;
  /** The seq this message answers (stored as its refSeq). */
  replyTo?: number;
  /** Defaults to newID(); pass one to make a retry of your own idempotent. */
  clientMsgId?: string;
}

export interface HistoryPage {
  /** Oldest first. */
  messages: Message[];
  lastSeq: number;
}

export interface SearchHit {
  message: Message;
  /** Code point offsets into message.text. */
  highlights: { start: number; end: number }[];
}

export interface SearchPage {
  hits: SearchHit[];
  nextCursor: string;
}

// ---- sessions and options ------------------------------------------------

export interface Gateway {
  id?: string;
  tcp?: string;
  ws?: string;
  mqtt?: string;
}

export interface Session {
  token: string;
  userId: number;
  username: string;
  device: string;
  gateway: Gateway;
}

/**
 * What the SDK uses of a WebSocket: the WHATWG interface (browsers, Node, React Native). It reads
 * ev.data of a message and ev.code and ev.reason of a close; the handlers take `any` so that the
 * DOM's and Node's WebSocket classes are assignable under strictFunctionTypes.
 */
export interface WebSocketLike {
  readonly readyState: number;
  onopen: ((ev: any) => void) | null;
  onerror: ((ev: any) => void) | null;
  onmessage: ((ev: any) => void) | null;
  onclose: ((ev: any) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

export type WebSocketClass = new (url: string, protocols?: string | string[]) => WebSocketLike;

export interface MagpieOptions {
  /** The HTTP API's base URL; default: the page's origin (required outside a page). */
  baseURL?: string;
  username?: string;
  /** Kept in memory only, to log in again when the token stops working. */
  password?: string;
  /** A session from an earlier login, instead of a password. */
  session?: Session;
  device?: string;
  /** Default "web". */
  platform?: string;
  /** Messages a first connection starts with per conversation; default 50. */
  window?: number;
  /** Reconnect backoff: 500 ms doubling to 15 s, with jitter. */
  backoffMinMs?: number;
  backoffMaxMs?: number;
  /** Messages per gap-filling history request; default 100. */
  pageLimit?: number;
  /** Overrides the gateway address the login names. */
  wsURL?: string;
  /** The WebSocket class to dial with; default globalThis.WebSocket. */
  WebSocket?: WebSocketClass;
  /** The newest stored session (another tab's), tried when the token stops working and there is no password. */
  freshSession?: () => Session | null | undefined;
}

// ---- conversations -------------------------------------------------------

/** What the client knows about one conversation (conversations.js). */
export interface Conversation {
  readonly id: string;
  /** "private", "group", or "" while unknown. */
  kind: string;
  /** Groups. */
  name: string;
  /** Private chats: the other user's name and id. */
  peer: string;
  peerId: number;
  /** Private chats: my remark (alias) for a friend. */
  remark: string;
  lastSeq: number;
  /** Mine, on any device. */
  deliveredSeq: number;
  readSeq: number;
  peerDeliveredSeq: number;
  peerReadSeq: number;
  pinned: boolean;
  muted: boolean;
  lastMessage: Message | null;
  /** I left or was removed (group events). */
  left: boolean;
  /** I deleted the chat at this seq: out of the list until a newer message (-1: not deleted). */
  hiddenSeq: number;
  /** I cleared its history up to here. */
  clearedSeq: number;
  /** Every seq up to the cursor was emitted (or was my own send). */
  cursor: number;
  /** The cursor the first connection started from. */
  baseline: number;
  /** The highest seq known to exist. */
  known: number;
  readonly unread: number;
  readonly hidden: boolean;
  readonly title: string;
}

export interface Conversations {
  /** The conversation, created empty if unknown. */
  get(id: string): Conversation;
  has(id: string): boolean;
  all(): Conversation[];
  /** conversation id -> cursor, for those with one. */
  cursors(): Record<string, number>;
}

// ---- events --------------------------------------------------------------

export interface StateEvent {
  state: ConnectionState;
  error: Error | null;
  /** While reconnecting: the wait before the next attempt. */
  retryInMs: number;
}

export interface ReceiptEvent {
  conversationId: string;
  kind: "delivered" | "read";
  seq: number;
  userId: number;
  username: string;
}

export interface TypingEvent {
  conversationId: string;
  userId: number;
  username: string;
  stopped: boolean;
}

export interface KickEvent {
  code: number;
  reason: string;
  reconnect: boolean;
}

/** A notice as the socket carries it (docs/protocol.md "Notices"). */
export interface WireNotice {
  type?: string;
  at?: string | number;
  actor_id?: string | number;
  actor?: string;
  group_id?: string;
  group_name?: string;
  scheduled_id?: string | number;
  code?: number;
  reason?: string;
  to_user?: string;
  to_group?: string;
}

/** The known notice types; others may come and must be ignored. */
export type NoticeType = "friend.requested" | "friend.accepted" | "group.join_requested" | "group.added" | "group.removed" | "scheduled.refused";

/**
 * A change that concerns me, pushed the moment it is stored: transient and
 * best effort; the HTTP list it names stays the record. Absent fields are
 * "" or 0.
 */
export interface NoticeEvent {
  type: NoticeType | string;
  /** Unix ms. */
  at: number;
  /** friend.*, group.*: who did it. */
  actorId: number;
  actor: string;
  /** group.*. */
  groupId: string;
  groupName: string;
  /** scheduled.refused: the message, its error code and readable reason, and its recipient or group. */
  scheduledId: number;
  code: number;
  reason: string;
  toUser: string;
  toGroup: string;
}

export interface MagpieEventMap {
  state: StateEvent;
  /** In order per conversation, once; includes own sends from other devices. */
  message: Message;
  /** Broadcasts and notifications (seq 0). */
  transient: Message;
  receipt: ReceiptEvent;
  conversation: Conversation;
  typing: TypingEvent;
  session: Session;
  kick: KickEvent;
  notice: NoticeEvent;
}

// ---- HTTP answers (docs/api.md) ------------------------------------------

export interface UserRef {
  user_id: number;
  username: string;
}

export interface OnlineUser {
  userId: number;
  username: string;
  /** The names of their online devices. */
  devices: string[];
}

export interface ConversationJSON {
  id: string;
  kind: string;
  name?: string;
  peer?: string;
  peer_id?: number;
  last_seq: number;
  delivered_seq: number;
  read_seq: number;
  peer_delivered_seq?: number;
  peer_read_seq?: number;
  unread: number;
  pinned?: boolean;
  muted?: boolean;
  cleared_seq?: number;
  last_message?: WireMessage;
}

export type JoinPolicy = "invite" | "open" | "approval";

export interface GroupMember {
  user_id: number;
  username: string;
  role: "owner" | "admin" | "member";
  muted_until: number;
  joined_at: number;
}

export interface Group {
  id: string;
  name: string;
  owner: string;
  join_policy: JoinPolicy;
  muted_until: number;
  member_count: number;
  created_at: number;
  intro: string;
  notice: string;
  avatar_url: string;
  max_members: number;
  version: number;
  /** Left out of lists and for non-members. */
  members?: GroupMember[];
}

export interface GroupFields {
  name?: string;
  join_policy?: JoinPolicy;
  muted_until?: number;
  intro?: string;
  notice?: string;
  avatar_url?: string;
  max_members?: number;
}

export interface JoinRequest {
  user_id: number;
  username: string;
  at: number;
}

export interface Friend {
  user_id: number;
  username: string;
  since: number;
  remark: string;
  group: string;
  seq: number;
}

export type FriendPolicy = "approve" | "anyone" | "nobody";

export interface FriendList {
  friends: Friend[];
  incoming: { user_id: number; username: string; since: number }[];
  outgoing: { user_id: number; username: string; since: number }[];
  blocked: { user_id: number; username: string; since: number }[];
  policy: FriendPolicy;
  seq: number;
}

export interface ScheduleAck {
  scheduled_id: number;
  send_at: number;
  client_msg_id: string;
  duplicate: boolean;
}

export interface ScheduledMessage {
  id: number;
  to_user?: string;
  to_group?: string;
  text: string;
  file_id?: string;
  client_msg_id: string;
  send_at: number;
  created_at: number;
  /** "refused" when it could not be sent at its time (then code, reason, refused_at); absent while pending. */
  status?: "refused";
  code?: number;
  reason?: string;
  refused_at?: number;
}

/** The HTTP ack of a send, a recall or an edit. */
export interface MessageAckJSON {
  conversation_id: string;
  seq: number;
  client_msg_id: string;
  sent_at: number;
  duplicate: boolean;
}

export interface Reads {
  seq: number;
  read_count: number;
  member_count: number;
  readers: string[];
}

export interface UploadedFile {
  id: string;
  name: string;
  content_type: string;
  size: number;
}

/** An envelope answer on the socket (protojson); one body field is set. */
export interface Envelope {
  id?: string;
  [body: string]: any;
}

// ---- the client ------------------------------------------------------------

/** One user's connection. Events are CustomEvents with their data in detail (MagpieEventMap). */
export declare class Magpie extends EventTarget {
  constructor(opts?: MagpieOptions);
  /** The options, with defaults filled in. */
  opts: MagpieOptions & Required<Pick<MagpieOptions, "baseURL" | "platform" | "window" | "backoffMinMs" | "backoffMaxMs" | "pageLimit">>;
  session: Session | null;
  password: string | null;
  state: ConnectionState;
  convs: Conversations;
  /** Messages taken in by source, and duplicates dropped. */
  stats: { live: number; sync: number; fill: number; duplicates: number };
  get userId(): number;
  get username(): string;

  addEventListener<K extends keyof MagpieEventMap>(type: K, listener: (ev: CustomEvent<MagpieEventMap[K]>) => void, options?: boolean | AddEventListenerOptions): void;
  addEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | AddEventListenerOptions): void;
  removeEventListener<K extends keyof MagpieEventMap>(type: K, listener: (ev: CustomEvent<MagpieEventMap[K]>) => void, options?: boolean | EventListenerOptions): void;
  removeEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | EventListenerOptions): void;
  /** Dispatches a CustomEvent of type with detail. */
  emit<K extends keyof MagpieEventMap>(type: K, detail: MagpieEventMap[K]): void;

  // HTTP API
  /** Any endpoint, with the token and one re-login on 401; raw: the body as a Blob. Resolves with null for 204. */
  http(method: string, path: string, body?: unknown, opts?: { auth?: boolean; raw?: boolean; retried?: boolean }): Promise<any>;
  register(username: string, password: string): Promise<{ id: number; username: string }>;
  login(username?: string, password?: string): Promise<Session>;
  logout(): Promise<void>;
  lookupUser(name: string): Promise<UserRef>;
  conversationsHTTP(): Promise<{ conversations: ConversationJSON[] }>;
  hideConversation(id: string, clear?: boolean): Promise<{ conversation_id: string; hidden_seq: number; cleared_seq: number }>;
  search(q: string, opts?: { conversationId?: string; limit?: number; cursor?: string }): Promise<SearchPage>;
  createGroup(name: string, members: string[], joinPolicy?: JoinPolicy): Promise<Group>;
  groups(): Promise<{ groups: Group[] }>;
  group(id: string): Promise<Group>;
  invite(id: string, usernames: string[]): Promise<Group>;
  leave(id: string): Promise<null>;
  updateGroup(id: string, fields: GroupFields): Promise<Group>;
  dissolveGroup(id: string): Promise<null>;
  transferOwner(id: string, username: string): Promise<null>;
  setRole(id: string, username: string, role: "admin" | "member"): Promise<null>;
  /** until: Unix ms; 0 unmutes. */
  muteMember(id: string, username: string, until: number): Promise<null>;
  removeMember(id: string, username: string): Promise<null>;
  /** The group (open groups), or {status: "requested"} (groups that take requests). */
  joinGroup(id: string): Promise<Group | { status: "requested" }>;
  joinRequests(id: string): Promise<JoinRequest[]>;
  answerJoin(id: string, username: string, approve: boolean): Promise<null>;
  friends(): Promise<FriendList>;
  requestFriend(username: string): Promise<{ status: "requested" | "friends" }>;
  /** {status: "friends"} when accepted, null when declined. */
  answerFriend(username: string, accept: boolean): Promise<{ status: "friends" } | null>;
  removeFriend(username: string): Promise<null>;
  updateFriend(username: string, fields: { remark?: string; group?: string }): Promise<Friend>;
  setFriendPolicy(policy: FriendPolicy): Promise<{ policy: FriendPolicy }>;
  /** sendAt: Unix ms. */
  schedule(req: { toUser?: string; toGroup?: string; text: string; sendAt: number; clientMsgId?: string }): Promise<ScheduleAck>;
  scheduled(): Promise<ScheduledMessage[]>;
  cancelScheduled(id: number | string): Promise<null>;
  recall(conversationId: string, seq: number): Promise<MessageAckJSON>;
  edit(conversationId: string, seq: number, text: string): Promise<MessageAckJSON>;
  reads(conversationId: string, seq: number): Promise<Reads>;
  /** onProgress(sent, total) where XMLHttpRequest exists (browsers). */
  uploadFile(file: Blob, name?: string, opts?: { onProgress?: (sent: number, total: number) => void }): Promise<UploadedFile>;
  /** Downloads a file with the Authorization header. */
  fileBlob(id: string): Promise<Blob>;

  // the long connection
  /** Logs in if needed, connects and syncs; resolves once ready and keeps the connection up until close(). */
  start(): Promise<void>;
  /** Resolves when connected and synced; rejects once closed. */
  ready(): Promise<void>;
  /** Ends the wait before the next connection attempt. */
  reconnectNow(): void;
  close(err?: Error): void;
  /** The WebSocket URL to dial: opts.wsURL, the login's gateway, or baseURL's /v1/ws. */
  wsURL(): string;
  /** Sends one envelope body; resolves with the answer envelope, rejects with MagpieError or ConnectionLost. */
  request(body: Record<string, unknown>, ws?: WebSocketLike | null): Promise<Envelope>;
  /** request() that waits for the connection and retries what the server says to retry. */
  call(body: Record<string, unknown>): Promise<Envelope>;
  online(): Promise<OnlineUser[]>;
  /** A typing notice, sent once and never retried. */
  typing(conversationId: string, stopped?: boolean): Promise<Envelope>;
  /** Moves my read cursor (every device sees it; the peer sees "read"). */
  markRead(conversationId: string, seq: number): Promise<void>;
  /** Resolves once committed; retried with the same client_msg_id, so it is stored once. */
  send(req: SendRequest): Promise<SendAck>;
  /** A page of a conversation, oldest first; moves no cursor and emits no event. */
  history(conversationId: string, opts?: { before?: number; after?: number; limit?: number }): Promise<HistoryPage>;
}
