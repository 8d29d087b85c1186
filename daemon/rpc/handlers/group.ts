import { createGroup } from "../../groups/create.js"
import { inviteMember } from "../../groups/invite.js"
import { groupMembers, listGroups } from "../../groups/queries.js"
import { leaveGroup, removeMember } from "../../groups/removal.js"
import { rejoinGroup } from "../../groups/rejoin.js"
import { updateOwnKeys } from "../../groups/selfUpdate.js"
import { acceptInvitation, declineInvitation } from "../../groups/welcome.js"
import { invitationView } from "../../store/invitationStore.js"
import type { Handlers } from "../dispatch.js"
import type { HandlerContext } from "./context.js"

// Verbs that change a group run on the group queue (`run`); queries read the store directly.
export const groupHandlers = ({
  daemon,
}: HandlerContext): Pick<
  Handlers,
  | "group.create"
  | "group.list"
  | "group.members"
  | "group.invite"
  | "group.remove"
  | "group.leave"
  | "group.selfUpdate"
  | "group.rejoin"
  | "group.invites"
  | "group.accept"
  | "group.decline"
> => ({
  "group.create": (p) => daemon.groups().run((g) => createGroup(g.ctx, p.name)),
  "group.list": () => ({
    groups: daemon.identity().registered ? listGroups(daemon.groups().ctx.groups, daemon.groups().ctx.directory) : [],
  }),
  "group.members": (p) => groupMembers(daemon.groups().ctx.groups, daemon.groups().ctx.directory, p.group),
  "group.invite": (p) => daemon.groups().run((g) => inviteMember(g.ctx, g.commits, p.group, p.user)),
  "group.remove": (p) => daemon.groups().run((g) => removeMember(g.ctx, g.commits, p.group, p.user)),
  "group.leave": (p) => daemon.groups().run((g) => leaveGroup(g.ctx, g.sender, p.group)),
  "group.selfUpdate": (p) => daemon.groups().run((g) => updateOwnKeys(g.ctx, g.commits, p.group)),
  "group.rejoin": (p) => daemon.groups().run((g) => rejoinGroup(g.ctx, p.group)),
  "group.invites": () => ({ invitations: daemon.invitations.all().map(invitationView) }),
  "group.accept": (p) =>
    daemon.groups().run((g) => acceptInvitation(g.ctx, p.groupId, (id) => g.incoming.catchUp(id), g.ctx.onKeyConsumed)),
  "group.decline": (p) => daemon.groups().run(async (g) => declineInvitation(g.ctx, p.groupId)),
})
