import { create } from '@bufbuild/protobuf';
import { TimestampSchema, type Timestamp } from '@bufbuild/protobuf/wkt';
import t from 'tap';
import { repairAll } from '../../src/admin/repair.js';
import type { EnforcementResult } from '../../src/enforcement/enforcer.js';

/** An instance whose creation times have microseconds (as ZITADEL's do), many of them shared. */
function instance(users: number) {
  const sessions = Array.from({ length: users }, (_, i) => ({
    id: String(1000 + i),
    userId: `u${i}`,
    // Several sessions per microsecond, and microseconds that float milliseconds cannot hold exactly.
    created: create(TimestampSchema, { seconds: 1_767_225_600n + BigInt(Math.floor(i / 7)), nanos: 123_457_000 + (i % 3) * 1000 }),
  }));
  const cmp = (a: Timestamp, b: Timestamp) => Number(a.seconds - b.seconds) || a.nanos - b.nanos;
  sessions.sort((a, b) => cmp(a.created, b.created) || a.id.localeCompare(b.id));
  return {
    pageSize: 50,
    async listInstancePage(from: Timestamp | undefined, offset: number) {
      const matching = sessions.filter((s) => !from || cmp(s.created, from) >= 0);
      return matching.slice(offset, offset + 50).map((s) => ({
        session: { id: s.id, userId: s.userId, organizationId: 'org', createdAt: undefined, expiresAt: undefined, verifiedAt: {} },
        created: s.created,
      }));
    },
  };
}

t.test('keyset paging on exact timestamps reaches every user once, whatever the page boundaries', async (t) => {
  const checked: string[] = [];
  const summary = await repairAll({
    directory: instance(1000),
    enforcer: { enforceUser: async (userId): Promise<EnforcementResult> => (checked.push(userId), { outcome: 'enforced', evicted: [], pruned: [], deferred: 0, dryRun: false }) },
  });
  t.equal(summary.usersChecked, 1000);
  t.equal(new Set(checked).size, 1000, 'no user skipped, none twice');
  t.equal(summary.sessionsSeen, 1000, 'sessions at a page boundary are not counted twice');
});
