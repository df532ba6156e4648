// The eight execution statuses of DESIGN.md, each with its own label and colour class.

export const STATUSES = [
  "pending",
  "queued",
  "running",
  "paused",
  "success",
  "partially_executed",
  "failed",
  "rejected",
] as const;

export type Status = (typeof STATUSES)[number];

export const STATUS_LABEL: Record<Status, string> = {
  pending: "Pending",
  queued: "Queued",
  running: "Running",
  paused: "Paused",
  success: "Success",
  partially_executed: "Partially executed",
  failed: "Failed",
  rejected: "Rejected",
};

export function isStatus(s: string): s is Status {
  return (STATUSES as readonly string[]).includes(s);
}

export const LEVELS = ["trace", "debug", "info", "warn", "error"] as const;

export const TRIGGER_KINDS = ["http", "schedule", "manual"] as const;
