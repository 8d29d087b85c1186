/** Server settings with their defaults; main.ts fills them from flags, tests from their own values. */
import type { LogFormat, LogLevel } from "../logging/logging.js"
import { systemClock, type Clock } from "./clock.js"

export interface ServerConfig {
  /** SQLite database file, or a `postgres://` URL (store/postgres/). */
  dbPath: string
  /**
   * Connections of the PostgreSQL pool for transactions and queries (rate-limit buckets, the doorbell and its listener
   * have their own: 6 more). More than PostgreSQL has cores to run them only queue on those cores and on each other's
   * locks: on two cores 6 made ~20 % more reserve+spend pairs per second than 16, with a lower p99.
   */
  dbConnections: number
  /**
   * The domain of the client ids of new devices (`<user-id>:<device-id>@<domain>`): `--domain`, by default the host
   * the server serves on. A device keeps the client id it was created with.
   */
  domain: string
  /** How long a reservation holds a KeyPackage before it returns to the pool. */
  reservationTtlMs: number
  /** Lifetime of a bearer token. */
  sessionTtlMs: number
  /** Lifetime of a login challenge. */
  challengeTtlMs: number
  /** Reservations per (requester, target) pair: a token bucket (RFC 9420 §16.8). */
  reserveBurst: number
  reservePerMinute: number
  /** Reservations of one target's keys by everyone together (drain resistance): a token bucket per target. */
  reserveTargetBurst: number
  reserveTargetPerMinute: number
  /**
   * The share of that budget open to requesters who share no group with the target: a smaller bucket per target
   * that strangers take from as well, so that a burst of strangers cannot lock out the target's group-mates.
   */
  reserveStrangerBurst: number
  reserveStrangerPerMinute: number
  /** Reservations per client address, whoever the accounts. */
  reserveIpBurst: number
  reserveIpPerMinute: number
  /** Registrations per client address. */
  registerIpBurst: number
  registerIpPerMinute: number
  /** Login challenges per client address. */
  challengeIpBurst: number
  challengeIpPerMinute: number
  /** Unanswered, unexpired login challenges one user may have at once; the table stays bounded. */
  maxOutstandingChallenges: number
  /** Below this many available keys the owner's pool is "low" and the owner is told. */
  lowWatermark: number
  /** Spent keys and old reservations are kept this long before garbage collection. */
  retentionMs: number
  /** How often expired keys, reservations, sessions and challenges are collected; 0 turns the timer off. */
  gcIntervalMs: number
  /** Group log entries and unacknowledged inbox items are kept this long. */
  deliveryRetentionMs: number
  /** Largest MLS message (Commit, Welcome, proposal or application message), in bytes. */
  maxMessageBytes: number
  /** Posts (messages, Commits, new groups) per user: a token bucket. */
  postBurst: number
  postPerMinute: number
  /** How often the stream pings; a connection that missed the previous ping is dropped. 0 turns pings off. */
  wsPingIntervalMs: number
  /** A stream client with more than this many bytes waiting in its socket buffer is disconnected. */
  wsMaxBufferedBytes: number
  /** A stream connection that has not sent a valid hello this long after the upgrade is closed. */
  wsHelloTimeoutMs: number
  /** Stream connections one remote address may hold at once; further upgrades are answered 429. */
  wsMaxConnectionsPerIp: number
  logLevel: LogLevel
  /** How stderr log lines look: `pretty` for a terminal, `json` for machines. */
  logFormat: LogFormat
  clock: Clock
  /** PEM certificate chain and private key: the server speaks HTTPS and WSS itself. Plain HTTP when absent. */
  tls?: { cert: Buffer; key: Buffer }
}

export const defaultConfig: Omit<ServerConfig, "dbPath"> = {
  domain: "localhost",
  dbConnections: 6,
  reservationTtlMs: 60_000,
  sessionTtlMs: 24 * 3600_000,
  challengeTtlMs: 60_000,
  reserveBurst: 16,
  reservePerMinute: 12,
  reserveTargetBurst: 64,
  reserveTargetPerMinute: 60,
  reserveStrangerBurst: 8,
  reserveStrangerPerMinute: 4,
  reserveIpBurst: 64,
  reserveIpPerMinute: 120,
  registerIpBurst: 10,
  registerIpPerMinute: 1,
  challengeIpBurst: 30,
  challengeIpPerMinute: 30,
  maxOutstandingChallenges: 8,
  lowWatermark: 8,
  retentionMs: 24 * 3600_000,
  gcIntervalMs: 60_000,
  deliveryRetentionMs: 30 * 24 * 3600_000,
  maxMessageBytes: 256 * 1024,
  postBurst: 200,
  postPerMinute: 1200,
  wsPingIntervalMs: 30_000,
  wsMaxBufferedBytes: 8 * 1024 * 1024,
  wsHelloTimeoutMs: 10_000,
  wsMaxConnectionsPerIp: 64,
  logLevel: "info",
  logFormat: "json",
  clock: systemClock,
}
