// A job for the PostgreSQL crash tests, run by the real `tidemark run`:
//   PG_URL, PG_SCHEMA   the server and the schema holding the table `out`
//   JOB_SIZE            records per partition of the generator source (2 partitions)
// The transform is non-deterministic on purpose (the process id in every row): staged
// outputs, not a recomputation, must be what a redelivery writes.
import { defineJob, generatorSource, postgresSink } from 'tidemark';

interface Row { readonly p: number; readonly o: number; readonly v: string; readonly pid: number }

export default defineJob<Row>({
  name: 'pg-crash',
  source: generatorSource({ partitions: 2, size: Number(process.env.JOB_SIZE ?? 3000) }),
  sinks: [postgresSink<Row>({
    name: 'pg',
    connection: { connectionString: process.env.PG_URL, options: `-c search_path=${process.env.PG_SCHEMA}` },
    table: 'out', columns: ['p', 'o', 'v', 'pid'],
  })],
  transform: (records) => records.map((r) => ({ p: r.partition, o: r.offset, v: r.value!.toString(), pid: process.pid })),
  batch: { maxRecordsPerPartition: 500 },
});
