// Group mode's ownership decision (src/group/ownership.ts): a partition goes on as it is only
// when the very next generation assigns it again to the same member; after any gap it is
// taken over anew from what the group holds, since someone else may have owned it meanwhile.
import { changeOf, follows } from '../../src/group/ownership';

const p = (partition: number) => ({ topic: 't', partition });
const keys = (list: ReadonlyArray<{ topic: string; partition: number }>): string[] => list.map((x) => `${x.topic}/${x.partition}`);

it('the next generation of the same member keeps what it assigns again, revokes the rest and adds the new', () => {
  const prev = { generation: 4, memberId: 'm', partitions: [p(0), p(1)] };
  const next = { generation: 5, memberId: 'm', partitions: [p(1), p(2)] };
  const c = changeOf(prev, next, new Set(['t/0', 't/1']));
  expect({ kept: keys(c.kept), added: keys(c.added), revoked: keys(c.revoked) }).toEqual({ kept: ['t/1'], added: ['t/2'], revoked: ['t/0'] });
});

it('a skipped generation, a new member id, or a partition dropped meanwhile is taken over anew', () => {
  const prev = { generation: 4, memberId: 'm', partitions: [p(0), p(1)] };
  expect(keys(changeOf(prev, { generation: 6, memberId: 'm', partitions: [p(0), p(1)] }, new Set(['t/0', 't/1'])).added)).toEqual(['t/0', 't/1']);
  expect(keys(changeOf(prev, { generation: 5, memberId: 'm2', partitions: [p(0)] }, new Set(['t/0', 't/1'])).added)).toEqual(['t/0']);
  const dropped = changeOf(prev, { generation: 5, memberId: 'm', partitions: [p(0), p(1)] }, new Set(['t/1']));
  expect({ kept: keys(dropped.kept), added: keys(dropped.added) }).toEqual({ kept: ['t/1'], added: ['t/0'] });
  expect(follows(undefined, prev)).toBe(false);
  expect(keys(changeOf(undefined, prev, new Set()).added)).toEqual(['t/0', 't/1']);
});
