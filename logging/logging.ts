/**
 * Where and how both processes log: pino to stderr (stdout carries only the one "listening" line), human-readable
 * through pino-pretty when stderr is a terminal, one JSON object per line otherwise; `--log-format` overrides.
 */
import { pino, type DestinationStream } from "pino"
import { PinoPretty } from "pino-pretty"

export const logLevels = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const
export type LogLevel = (typeof logLevels)[number]

export const logFormats = ["pretty", "json"] as const
export type LogFormat = (typeof logFormats)[number]

/** The format when no flag says: pretty for a person at a terminal, JSON for files, pipes and log collectors. */
export function defaultLogFormat(stream: { isTTY?: boolean } = process.stderr): LogFormat {
  return stream.isTTY === true ? "pretty" : "json"
}

export function isLogLevel(text: string): text is LogLevel {
  return (logLevels as readonly string[]).includes(text)
}

export function isLogFormat(text: string): text is LogFormat {
  return (logFormats as readonly string[]).includes(text)
}

/** stderr in `format`. Synchronous writes, so the lines logged just before an exit are not lost. */
export function logDestination(format: LogFormat): DestinationStream {
  if (format === "json") return pino.destination({ fd: 2, sync: true })
  return PinoPretty({
    destination: 2,
    sync: true,
    colorize: process.stderr.isTTY === true,
    translateTime: "SYS:HH:MM:ss.l",
  })
}
