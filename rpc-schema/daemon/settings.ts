/** `settings.*`: the profile's settings, persisted in the daemon's store (also set at start by `mlsd` flags). */
import { Type, type Static } from "@sinclair/typebox"
import { Strict } from "../common.js"
import { method } from "./method.js"

/**
 * What a Welcome does: `auto` joins the group at once (the default); `ask` keeps it as a pending invitation
 * (`invite.received`) until `group.accept` or `group.decline`.
 */
export const InvitesMode = Type.Union([Type.Literal("auto"), Type.Literal("ask")], {
  description: "auto (join every Welcome at once, the default) | ask (keep it pending until group.accept/decline)",
})
export type InvitesMode = Static<typeof InvitesMode>

export const SettingsResult = Type.Object({ invites: InvitesMode })
export type SettingsResult = Static<typeof SettingsResult>

export const SettingsGetParams = Strict({})
export type SettingsGetParams = Static<typeof SettingsGetParams>

export const get = method({
  name: "settings.get",
  summary: "the profile's settings",
  description: "The profile's settings as stored (`mlsd --invites` or `settings.set` changed them last).",
  params: SettingsGetParams,
  result: SettingsResult,
  errors: [],
})

export const SettingsSetParams = Strict({
  invites: Type.Optional(
    Type.Union([Type.Literal("auto"), Type.Literal("ask")], {
      description: "auto | ask: how the next Welcomes are handled (pending invitations stay pending)",
    }),
  ),
})
export type SettingsSetParams = Static<typeof SettingsSetParams>

export const set = method({
  name: "settings.set",
  summary: "change the profile's settings",
  description:
    "Changes the settings given (the others stay) and stores them; answers with all of them. Switching `invites` to `auto` leaves pending invitations pending: accept or decline them.",
  params: SettingsSetParams,
  result: SettingsResult,
  errors: [],
})
