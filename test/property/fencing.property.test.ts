// Invariant 7 (DESIGN.md), the part a pure decision carries: whatever state a lock is
// found in, `decideTakeover` (checkpoint/lock.ts) never takes a live owner's lock, and a
// killed owner's lock does not block the restart.
import * as fc from 'fast-check';
import { decideTakeover, lockStatus, STALE_MS, type LockOwner, type LockState } from '../../checkpoint/lock';
import { propertyParams } from './params';

const UPDATE_MS = 1_000; // how often a live owner refreshes its lock (checkpoint/lock.ts)

const owner: fc.Arbitrary<LockOwner> = fc.record({
  host: fc.constantFrom('here', 'there'), pid: fc.integer({ min: 1, max: 4_194_304 }), startTime: fc.option(fc.string(), { nil: null }),
  since: fc.nat(), lockIno: fc.nat(),
});

const now = fc.integer({ min: 0, max: 2 ** 40 });

/** Any state a lock can be read in, including ones a reader can meet mid-change. */
const state: fc.Arbitrary<LockState> = fc.record({
  present: fc.boolean(),
  refreshedAt: fc.option(fc.integer({ min: -(2 ** 40), max: 2 ** 41 }), { nil: null }),
  owner: fc.option(owner, { nil: null }),
  alive: fc.constantFrom(true, false, null),
});

describe("invariant 7: fencing — a live owner's lock is never taken over", () => {
  it('an owner known to be alive is refused, whatever the clock says (also a frozen, stale one)', () => {
    fc.assert(fc.property(state, now, (s, t) => {
      if (!s.present || s.alive !== true) return;
      expect(decideTakeover(s, t)).toBe('refuse-live-owner');
      expect(lockStatus(s, t)).toMatchObject({ held: true, stale: false }); // and inspect says it runs
    }), propertyParams(2_000));
  });

  it('an owner that cannot be checked (another host, not recorded) is waited for while it refreshes the lock', () => {
    fc.assert(fc.property(state, now, fc.integer({ min: 0, max: STALE_MS }), (s, t, age) => {
      expect(decideTakeover({ ...s, present: true, alive: null, refreshedAt: t - age }, t)).toBe('wait');
    }), propertyParams(2_000));
  });

  it('over a run: while the owner lives no observer takes over; once it is killed, a restart takes over (at once on its host, once stale elsewhere)', () => {
    const run = fc.record({
      sameHost: fc.boolean(),
      start: fc.nat(1_000_000),
      killedAfter: fc.nat(100_000),
      // When observers look, relative to the start, and how late each refresh lands (a busy event loop).
      looks: fc.array(fc.nat(150_000), { minLength: 1, maxLength: 30 }),
      lag: fc.nat(UPDATE_MS / 2),
    });
    fc.assert(fc.property(run, ({ sameHost, start, killedAfter, looks, lag }) => {
      const killedAt = start + killedAfter;
      for (const look of looks) {
        const t = start + look;
        const alive = t < killedAt;
        // The last refresh the owner made before t (or before it died).
        const until = Math.min(t, killedAt);
        const refreshedAt = Math.max(start, start + Math.floor((until - start - lag) / UPDATE_MS) * UPDATE_MS + lag);
        const s: LockState = { present: true, refreshedAt: Math.min(refreshedAt, until), owner: null, alive: sameHost ? alive : null };
        const decision = decideTakeover(s, t);
        if (alive) expect(decision).not.toBe('take-over');
        else if (sameHost) expect(decision).toBe('take-over');
        else expect(decision).toBe(t - s.refreshedAt! > STALE_MS ? 'take-over' : 'wait');
      }
    }), propertyParams(2_000));
  });

  it('no lock: free to take', () => {
    fc.assert(fc.property(state, now, (s, t) => {
      expect(decideTakeover({ ...s, present: false }, t)).toBe('free');
    }), propertyParams(500));
  });
});
