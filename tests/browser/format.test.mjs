// Unit tests of the dashboards' shared formatting (server/src/api/pages/format.js), run with
// `node --test` by tests/tests/dashboard.rs.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";

// format.js is served to browsers as a module; loaded here as one whatever Node makes of a
// `.js` file outside a package.
const src = readFileSync(new URL("../../server/src/api/pages/format.js", import.meta.url), "utf8");
const { lapTime, periodText, gameMinute, gameAxis, momentText, swings, compoundLetter } = await import(`data:text/javascript,${encodeURIComponent(src)}`);

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

test("charts run on the game clock, period by period", () => {
  // Basketball: the clock counts down in 12-minute quarters, then 5-minute overtimes.
  assert.equal(gameMinute("basketball", 1, 720000), 0);
  assert.equal(gameMinute("basketball", 1, 0), 12);
  assert.equal(gameMinute("basketball", 3, 360000), 30);
  assert.equal(gameMinute("basketball", 5, 60000), 52);
  assert.equal(gameMinute("football", 4, 0), 60);
  assert.equal(gameMinute("football", 5, 300000), 65);
  // Soccer counts up; first-half stoppage stays in the first half's room, the second half
  // starts at 55 on the axis whatever the first half's added time was.
  assert.equal(gameMinute("soccer", 1, 46 * 60000), 46);
  assert.equal(gameMinute("soccer", 2, 45 * 60000), 55);
  assert.ok(gameMinute("soccer", 1, 49 * 60000) < gameMinute("soccer", 2, 45 * 60000));
  assert.equal(gameMinute("basketball", 0, null), 0);
  const bk = gameAxis("basketball", 5);
  assert.deepEqual(bk.marks.map((m) => [m.x, m.label]), [[0, "Q1"], [12, "Q2"], [24, "Q3"], [36, "Q4"], [48, "OT1"]]);
  assert.equal(bk.end, 53);
  assert.deepEqual(gameAxis("soccer", 2).marks.map((m) => [m.x, m.label]), [[0, "1H"], [55, "2H"]]);
  assert.equal(gameAxis("football", 1).end, 60);
});

test("moments read as fans say them", () => {
  assert.equal(momentText("basketball", 3, 312000), "Q3 5:12");
  assert.equal(momentText("soccer", 1, 22 * 60000 + 5000), "23'");
  assert.equal(momentText("soccer", 1, 46 * 60000 + 5000), "45+2'");
  assert.equal(momentText("soccer", 2, 93 * 60000), "90+4'");
});

test("key moments are the biggest swings, in time order", () => {
  assert.deepEqual(swings([0.5, 0.52, 0.7, 0.68, 0.3, 0.35, 0.45]), [2, 4, 6]);
  assert.deepEqual(swings([0.5, 0.51, 0.52]), []);
  assert.deepEqual(swings([0.5, 0.9, 0.1], 1), [2]);
});

test("tyres are lettered", () => {
  assert.equal(compoundLetter("soft"), "S");
  assert.equal(compoundLetter("intermediate"), "I");
  assert.equal(compoundLetter("unknown"), "–");
  assert.equal(compoundLetter(null), "–");
});
