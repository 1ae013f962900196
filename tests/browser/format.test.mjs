// Unit tests of the dashboards' shared formatting (server/src/api/pages/format.js), run with
// `node --test` by tests/tests/dashboard.rs.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";

// format.js is served to browsers as a module; loaded here as one whatever Node makes of a
// `.js` file outside a package.
const src = readFileSync(new URL("../../server/src/api/pages/format.js", import.meta.url), "utf8");
const { lapTime, periodText } = await import(`data:text/javascript,${encodeURIComponent(src)}`);

test("lap times read as timing screens show them", () => {
  assert.equal(lapTime(93212), "1:33.212");
  assert.equal(lapTime(60004), "1:00.004");
  assert.equal(lapTime(59004), "59.004");
  assert.equal(lapTime(null), "");
});

test("breaks between periods are named", () => {
  const bk = (period, last_event) => ({ sport: "basketball", status: "live", period, clock_ms: 0, last_event });
  assert.equal(periodText(bk(1, "period_end")), "End of Q1");
  assert.equal(periodText(bk(2, "period_end")), "Halftime");
  assert.equal(periodText(bk(4, "period_end")), "End of Q4");
  assert.equal(periodText(bk(5, "period_end")), "End of OT1");
  assert.equal(periodText(bk(3, "shot")), "Q3 0:00");
  assert.equal(periodText({ sport: "football", status: "live", period: 2, last_event: "period_end" }), "Halftime");
  assert.equal(periodText({ sport: "soccer", status: "live", period: 1, last_event: "period_end" }), "Half-time");
  assert.equal(periodText({ sport: "soccer", status: "ended", period: 2, last_event: "period_end" }), "FINAL");
});
