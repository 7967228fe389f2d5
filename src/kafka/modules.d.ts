// Type declarations for the codec packages that ship none (see codecs.ts).
declare module 'kafkajs-snappy' {
  interface KafkaJsCodec {
    compress(encoder: { buffer: Buffer }): Promise<Buffer>;
    decompress(buffer: Buffer): Promise<Buffer>;
  }
  const createSnappyCodec: () => KafkaJsCodec;
  export = createSnappyCodec;
}

declare module 'lz4js' {
  export function compress(src: Uint8Array, maxSize?: number): Uint8Array;
  export function decompress(src: Uint8Array, maxSize?: number): Uint8Array;
}

// kafkajs's consumer runner (fetch-hook.ts wraps one method of it).
declare module 'kafkajs/src/consumer/runner' {
  class Runner {
    handleBatch(batch: unknown): Promise<void>;
  }
  export = Runner;
}

// kafkajs's broker connection (fetch-hook.ts wraps its fetch, coordinator-refusals.ts its findGroupCoordinator, produce-hook.ts its produce).
declare module 'kafkajs/src/broker' {
  class Broker {
    fetch(request: unknown): Promise<unknown>;
    findGroupCoordinator(request: { groupId: string; coordinatorType?: number }): Promise<unknown>;
  }
  export = Broker;
}

// kafkajs's protocol decoder and its Long (varlong-hook.ts replaces Decoder#readVarLong, long-hook.ts Long.fromString and Long#add; fetch-decoder.ts reads Fetch answers with them).
declare module 'kafkajs/src/protocol/decoder' {
  class Decoder {
    constructor(buffer: Buffer);
    readVarLong(): { toString(): string };
    readInt16(): number;
    readInt32(): number;
    readInt64(): bigint;
    readString(): string | null;
    readBytes(byteLength: number): Buffer;
    canReadBytes(length: number): boolean;
    readArray<T>(reader: (decoder: Decoder) => T): T[];
    readArrayAsync<T>(reader: (decoder: Decoder) => Promise<T>): Promise<T[]>;
  }
  export = Decoder;
}

// kafkajs's Fetch v11 answer and its codec table (fetch-decoder.ts replaces the answer's decode).
declare module 'kafkajs/src/protocol/requests/fetch/v11/response' {
  const response: { decode(rawData: Buffer): Promise<unknown>; parse(data: unknown): Promise<unknown> };
  export = response;
}

declare module 'kafkajs/src/protocol/message/compression' {
  export function lookupCodecByAttributes(attributes: number): { decompress(buffer: Buffer): Promise<Buffer> } | null;
}

declare module 'kafkajs/src/utils/long' {
  class Long {
    static fromNumber(value: number): Long;
    static fromValue(value: string | number | bigint): Long;
    add(addend: Long | number | string): Long;
    toString(): string;
  }
  export = Long;
}

// kafkajs's consumer group (membership.ts wraps its joinAndSync to learn the generation).
declare module 'kafkajs/src/consumer/consumerGroup' {
  class ConsumerGroup {
    joinAndSync(): Promise<void>;
  }
  export = ConsumerGroup;
}

// kafkajs's request table (produce-hook.ts looks the Produce request up as Broker#produce does).
declare module 'kafkajs/src/protocol/requests/apiKeys' {
  const apiKeys: { readonly Produce: number };
  export = apiKeys;
}

declare module 'kafkajs/src/protocol/requests' {
  export const requests: { readonly Produce: object };
}

// kafkajs's per-connection request queue (throttle-hook.ts wraps the arming of its throttle check).
declare module 'kafkajs/src/network/requestQueue' {
  class RequestQueue {
    scheduleCheckPendingRequests(): void;
  }
  export = RequestQueue;
}
