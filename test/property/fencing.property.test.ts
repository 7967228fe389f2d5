// Invariant 7 (DESIGN.md), the part pure decisions carry: whatever state a lock is found
// in, `decideTakeover` (checkpoint/lock.ts) never takes a live owner's lock — frozen past
// the stale time or not — nor one whose owner cannot be checked from here, and a killed
// owner's lock does not block the restart. `ownerLiveness` proves death only on this
// machine: another host, or a pid in another PID namespace, is never taken for dead.
import * as fc from 'fast-check';
import { decideTakeover, lockStatus, ownerLiveness, STALE_MS, type LockOwner, type LockState } from '../../checkpoint/lock';
import { propertyParams } from './params';

const owner: fc.Arbitrary<LockOwner> = fc.record({
  host: fc.constantFrom('here', 'there'), pid: fc.integer({ min: 1, max: 4_194_304 }), startTime: fc.option(fc.string(), { nil: null }),
  since: fc.nat(), nonce: fc.string({ minLength: 1 }), machineId: fc.option(fc.constantFrom('m1', 'm2'), { nil: null }),
  bootId: fc.option(fc.constantFrom('b1', 'b2'), { nil: null }), pidNs: fc.option(fc.constantFrom('pid:[1]', 'pid:[2]'), { nil: null }),
});

const now = fc.integer({ min: 0, max: 2 ** 40 });

/** Any state a lock can be read in, including ones a reader can meet mid-change. */
const state: fc.Arbitrary<LockState> = fc.record({
  present: fc.boolean(),
  refreshedAt: fc.option(fc.integer({ min: -(2 ** 40), max: 2 ** 41 }), { nil: null }),
  owner: fc.option(owner, { nil: null }),
  alive: fc.constantFrom(true, false, null),
  unverifiable: fc.option(fc.string(), { nil: null }),
});

describe("invariant 7: fencing — a live owner's lock is never taken over", () => {
  it('an owner known to be alive is refused, whatever the clock says (also a frozen, stale one)', () => {
    fc.assert(fc.property(state, now, (s, t) => {
      const frozen = { ...s, present: true, alive: true, refreshedAt: t - STALE_MS * 10 };
      expect(decideTakeover(frozen)).toBe('refuse-live-owner');
      expect(lockStatus(frozen)).toMatchObject({ held: true, stale: false }); // and inspect says it runs
    }), propertyParams(2_000));
  });

  it('an owner that cannot be checked (another host, another PID namespace, unreadable) is refused, never taken over, stale or not', () => {
    fc.assert(fc.property(state, now, (s, t) => {
      const d = decideTakeover({ ...s, present: true, alive: null, refreshedAt: t - STALE_MS * 10 });
      expect(d).toBe('refuse-unverifiable');
    }), propertyParams(2_000));
  });

  it('only a recorded owner proved gone is taken over', () => {
    fc.assert(fc.property(state, (s) => {
      if (decideTakeover(s) === 'take-over') expect(s).toMatchObject({ present: true, alive: false, owner: expect.anything() });
    }), propertyParams(2_000));
  });

  it('liveness is proved gone only on this machine: another host, or another PID namespace in this boot, cannot be told', () => {
    const here: LockOwner = { host: 'here', pid: 1, startTime: '1', since: 0, nonce: 'me', machineId: 'm1', bootId: 'b1', pidNs: 'pid:[1]' };
    fc.assert(fc.property(owner, (o) => {
      const { alive, unverifiable } = ownerLiveness(o, here);
      const sameKernel = o.host === 'here' && o.bootId === 'b1';
      if (o.host !== 'here') expect({ alive, unverifiable: typeof unverifiable }).toEqual({ alive: null, unverifiable: 'string' });
      else if (sameKernel && o.pidNs !== 'pid:[1]') expect(alive).toBeNull(); // a pid invisible from here is no proof of death
      else if (!sameKernel) expect(alive).toBe(o.machineId === 'm1' ? false : null); // an earlier boot of this machine: gone
    }), propertyParams(2_000));
  });

  it('over a run: while the owner lives (frozen or not) no observer takes over; once it is killed, a restart on its machine takes over at once', () => {
    const run = fc.record({
      sameMachine: fc.boolean(),
      start: fc.nat(1_000_000),
      killedAfter: fc.nat(100_000),
      frozenFrom: fc.nat(100_000),
      looks: fc.array(fc.nat(150_000), { minLength: 1, maxLength: 30 }),
    });
    fc.assert(fc.property(run, owner, ({ sameMachine, start, killedAfter, frozenFrom, looks }, o) => {
      const killedAt = start + killedAfter;
      for (const look of looks) {
        const t = start + look;
        const alive = t < killedAt;
        // A frozen owner stops refreshing, so its lock goes stale while it lives.
        const refreshedAt = Math.min(t, killedAt, start + frozenFrom);
        const s: LockState = { present: true, refreshedAt, owner: o, alive: sameMachine ? alive : null, unverifiable: sameMachine ? null : 'another host' };
        const decision = decideTakeover(s);
        if (alive || !sameMachine) expect(decision).not.toBe('take-over');
        else expect(decision).toBe('take-over');
      }
    }), propertyParams(2_000));
  });

  it('no lock: free to take', () => {
    fc.assert(fc.property(state, (s) => {
      expect(decideTakeover({ ...s, present: false })).toBe('free');
    }), propertyParams(500));
  });
});
