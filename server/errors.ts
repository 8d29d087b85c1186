/**
 * Maps every failure to the error body of DESIGN §2: AppErrors keep their code; Fastify's own
 * errors (validation, JSON, size, media type) become their stable codes; anything else is a
 * generic 500 with the full error in the log.
 */
import type { FastifyError, FastifyReply, FastifyRequest } from "fastify"
import { AppError, errorTable, type ErrorCode } from "../rpc-schema/errors.js"
import type { ErrorBody } from "../rpc-schema/server/index.js"

const fastifyCodes: Record<string, ErrorCode> = {
  FST_ERR_CTP_BODY_TOO_LARGE: "payload_too_large",
  FST_ERR_CTP_INVALID_MEDIA_TYPE: "unsupported_media_type",
  FST_ERR_CTP_INVALID_JSON_BODY: "invalid_request",
  FST_ERR_CTP_EMPTY_JSON_BODY: "invalid_request",
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: "invalid_request",
}

export function toAppError(err: FastifyError | Error): AppError | undefined {
  if (err instanceof AppError) return err
  const fe = err as FastifyError
  if (fe.validation) return new AppError("invalid_request", fe.message)
  const code = fe.code && fastifyCodes[fe.code]
  if (code) return new AppError(code, fe.message)
  // Body parse failures (SyntaxError from the JSON parser) arrive as 400 without a code of ours.
  if (fe.statusCode === 400) return new AppError("invalid_request", "malformed request body")
  if (fe.statusCode === 404) return new AppError("not_found", fe.message)
  return undefined
}

export function sendError(reply: FastifyReply, err: AppError): FastifyReply {
  const body: ErrorBody = { error: { code: err.code, message: err.message } }
  if (err.details) body.error.details = err.details
  const retry = err.details?.retryAfterS
  if (typeof retry === "number") void reply.header("retry-after", String(retry))
  return reply.status(errorTable[err.code].http).type("application/json").send(body)
}

export function errorHandler(err: FastifyError, request: FastifyRequest, reply: FastifyReply) {
  const known = toAppError(err)
  if (known) return sendError(reply, known)
  request.log.error({ err }, "unhandled error")
  return sendError(reply, new AppError("internal", "internal server error"))
}
