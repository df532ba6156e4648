// What every page shares: the current route (path and query), who is signed in, and
// the time zone times are shown in.

import type { Session } from "./api";
import { zoneName, type ZoneChoice } from "./time";

export const route = $state({ path: location.pathname, search: location.search });

/// Goes to `url` (path and query) as a new history entry; `replace` rewrites the current one.
export function navigate(url: string, replace = false) {
  if (url === location.pathname + location.search) return;
  if (replace) history.replaceState(null, "", url);
  else history.pushState(null, "", url);
  route.path = location.pathname;
  route.search = location.search;
}

window.addEventListener("popstate", () => {
  route.path = location.pathname;
  route.search = location.search;
});

export const app = $state<{ session: Session | null; zone: ZoneChoice }>({
  session: null,
  zone: readZone(),
});

function readZone(): ZoneChoice {
  const z = localStorage.getItem("flowd.zone");
  return z === "local" || z === "utc" ? z : "daemon";
}

export function setZone(z: ZoneChoice) {
  app.zone = z;
  localStorage.setItem("flowd.zone", z);
}

/// The IANA zone times are shown in now.
export function tz(): string {
  return zoneName(app.zone, app.session?.timezone ?? "UTC");
}

export function canChange(): boolean {
  return app.session?.role === "operator";
}
