/**
 * The room events about a room's access rather than its members: a change to invite-only or open,
 * and an invitation. They change no membership (the invitee is not in the room yet), so server
 * and clients keep them apart from joins, leaves and moderation, which do or concern members.
 */

/** `RoomEvent.action` values of the access kind (server/chat_invitations.ts). */
export const ACCESS_ACTIONS: ReadonlySet<string> = new Set(["invite-only", "open", "invited"]);
