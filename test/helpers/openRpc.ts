/**
 * The OpenRPC meta-schema (npm @open-rpc/meta-schema, the schema spec.open-rpc.org publishes) compiled with ajv, to
 * check `rpc.discover` documents against the standard rather than only against the project's own type. The schemas
 * inside a document are checked against the JSON Schema meta-schema it references (@json-schema-tools/meta-schema).
 */
import { createRequire } from "node:module"
import { Ajv } from "ajv"

// Both packages export the schemas as values their type declarations do not mention.
const require = createRequire(import.meta.url)
const { jsonSchema } = require("@json-schema-tools/meta-schema") as { jsonSchema: Record<string, unknown> }
const { openrpcDocument } = require("@open-rpc/meta-schema") as { openrpcDocument: Record<string, unknown> }

// The meta-schemas name a `$schema` ajv does not know; they are used as plain schemas, not validated themselves.
const { $schema: _js, ...jsonSchemaMeta } = jsonSchema
const { $schema: _doc, ...openRpcMeta } = openrpcDocument

const ajv = new Ajv({ strict: false, allErrors: true, validateSchema: false, validateFormats: false })
ajv.addSchema(jsonSchemaMeta)
// The OpenRPC meta-schema refers to it both with and without the trailing slash of its $id.
ajv.addSchema({ ...jsonSchemaMeta, $id: "https://meta.json-schema.tools" })
const validate = ajv.compile(openRpcMeta)

/** The meta-schema's complaints about `doc` (empty when it is a valid OpenRPC document). */
export function openRpcErrors(doc: unknown): string[] {
  if (validate(doc)) return []
  return (validate.errors ?? []).map((e) => `${e.instancePath || "/"} ${e.message ?? ""}`)
}
