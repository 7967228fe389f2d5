// Model-based test of group mode (test/support/group-model.ts): owners that plan, write
// ahead to the group, stage, deliver, commit; rebalances that bump the generation; kills,
// power losses, zombies that wake late, partitions added; deterministic and not. After every
// command no sink holds an offset twice or skips one, the group's offset never passes what a
// sink holds, a fenced owner's writes change nothing; after the drain every sink holds every
// record's output exactly once (and, deterministic, they all agree). The scenarios below
// show each invariant catching a deliberate mutation of recovery/handoff.ts.
import * as fc from 'fast-check';
import { decideTakeover, judgeLedgerWrite } from '../../recovery/handoff';
import { crash, freeze, groupProperty, produce, rebalance, REAL, step, Violation, wake, World, type Decisions } from '../support/group-model';
import { propertyParams } from './params';

describe('group mode under rebalances, crashes and zombies (model-based)', () => {
  for (const deterministic of [true, false]) {
    it(`keeps every sink exactly-once with a ${deterministic ? 'deterministic' : 'non-deterministic'} transform`, () => {
      const totals = { reruns: 0, fenced: 0, refused: 0, records: 0, pipelined: 0 };
      fc.assert(groupProperty(deterministic, REAL, (w) => {
        totals.reruns += w.reruns;
        totals.fenced += w.fencedWrites;
        totals.refused += w.refusedCommits;
        totals.records += w.log.reduce((a, b) => a + b, 0);
        totals.pipelined += w.pipelinedSteps;
      }), propertyParams(1500));
      console.log(`group model (${deterministic ? 'deterministic' : 'non-deterministic'}, maxInFlight 2): ${totals.records} records, ${totals.reruns} planned ranges rerun by a new owner, ${totals.fenced} zombie writes fenced, ${totals.refused} stale group commits refused, ${totals.pipelined} protocol points with 2 batches in flight`);
      // the runs reach the interesting cases, not only quiet ones
      expect(Math.min(totals.reruns, totals.fenced, totals.refused, totals.pipelined)).toBeGreaterThan(0);
    });
  }
});

/** Runs commands on a world of one partition and two owners with `decisions`; the Violation thrown, if any. */
function scenario(decisions: Decisions, commands: ReadonlyArray<fc.Command<object, World>>): Violation | undefined {
  const world = new World(1, 2, true, decisions);
  try {
    for (const c of commands) c.run({}, world);
    world.drain();
    return undefined;
  } catch (err) {
    if (err instanceof Violation) return err;
    throw err;
  }
}

// Owner 0 plans [0, 3), writes it ahead to the group and stages it (3 protocol points).
const stagedByOwner0 = [produce(0, 6), rebalance(0), step(0, 0, 3)];

describe('each invariant catches a mutation of the pure decisions', () => {
  it('a ledger that ignores epochs lets a zombie write after its fencing', () => {
    const commands = [...stagedByOwner0, freeze(0), rebalance(1), wake(0), step(0, 0, 1)];
    expect(scenario(REAL, commands)).toBeUndefined();
    const ignoreEpochs: Decisions = { ...REAL, judge: (entry, w) => judgeLedgerWrite(entry && { ...entry, epoch: 0 }, w) };
    expect(scenario(ignoreEpochs, commands)?.message).toMatch(/sink postgres accepted 0 \[0, 3\) from epoch 1 after epoch 2 claimed it/);
  });

  it('a ledger that writes a duplicate range holds offsets twice', () => {
    const commands = [...stagedByOwner0, step(0, 0, 1), crash(0, false), rebalance(0), step(1, 0, 4)];
    expect(scenario(REAL, commands)).toBeUndefined();
    const rewrite: Decisions = { ...REAL, judge: (entry, w) => (judgeLedgerWrite(entry, w) === 'duplicate' ? 'write' : judgeLedgerWrite(entry, w)) };
    expect(scenario(rewrite, commands)?.message).toMatch(/sink postgres holds offset 0 of partition 0 at position 3 \(twice\)/);
  });

  it('a takeover that resumes at a planned range\'s end skips it', () => {
    const commands = [...stagedByOwner0, crash(0, true), rebalance(0), step(1, 0, 8)];
    expect(scenario(REAL, commands)).toBeUndefined();
    const resumeAtUntil: Decisions = {
      ...REAL,
      takeover: (commit, id) => {
        const t = decideTakeover(commit, id);
        return t.kind === 'rerun' ? { kind: 'resume', at: t.range.until } : t;
      },
    };
    // the new owner's write-ahead moves the group's offset past what any sink holds
    expect(scenario(resumeAtUntil, commands)?.message).toMatch(/the group's offset of 0 is 3, but a sink holds only 0/);
  });
});
