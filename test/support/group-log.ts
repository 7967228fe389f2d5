// A MemoryLog that is its own consumer group, for group-mode engine tests without a broker:
// one member, assignments set by the test, the group's commits kept with their metadata.
import { partitionKey, type PartitionRef } from '../../checkpoint/model';
import type { Assignment, GroupMembership } from '../../src/kafka/membership';
import { MemoryLog } from './memory-source';

export class GroupLog extends MemoryLog {
  readonly groupId = 'g';
  readonly commits = new Map<string, { offset: number; metadata: string | null }>();
  /** Every accepted group commit, in order. */
  readonly history: Array<{ partition: number; offset: number; plan: boolean }> = [];
  private assignment: Assignment;

  constructor(partitions: number, generation: number, assigned: readonly number[]) {
    super('t', partitions);
    this.assignment = this.assign(generation, assigned);
  }

  assign(generation: number, assigned: readonly number[]): Assignment {
    this.assignment = { generation, memberId: 'm', partitions: assigned.map((partition) => ({ topic: 't', partition })), at: Date.now() };
    return this.assignment;
  }

  async joinGroup(): Promise<GroupMembership> {
    const membership = {
      start: async () => this.assignment,
      current: () => this.assignment,
      commit: async (as: Assignment, offsets: ReadonlyArray<PartitionRef & { offset: number; metadata: string | null }>) => {
        if (as.generation !== this.assignment.generation) return false;
        for (const o of offsets) {
          this.commits.set(partitionKey(o), { offset: o.offset, metadata: o.metadata });
          this.history.push({ partition: o.partition, offset: o.offset, plan: o.metadata !== null });
        }
        return true;
      },
      waitForJoin: async () => {},
      stop: async () => {},
    };
    return membership as unknown as GroupMembership;
  }

  async groupCommits(parts: readonly PartitionRef[]): Promise<Map<string, { offset: number; metadata: string | null }>> {
    return new Map(parts.flatMap((p) => (this.commits.has(partitionKey(p)) ? [[partitionKey(p), this.commits.get(partitionKey(p))!] as const] : [])));
  }
}
