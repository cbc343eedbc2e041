// ES module face of shmq: the same objects as require('shmq'), so that a
// program mixing import and require shares one set of classes.
import shmq from '../dist/index.js'

export const { Producer, Consumer, Publisher, Subscriber, WorkQueueProducer, WorkQueueConsumer, Server, RequestContext, Client, ShmqError, unlink, DEFAULT_CAPACITY, MIN_CAPACITY, MAX_CAPACITY, DEFAULT_SPIN_MICROS, collectGarbage, inspectSegment, listSegments, statSegment,
  defineMessage, checkCompatible, compatibilityProblems, readHeader, schemaIdOf, crc32c, MESSAGE_HEADER_BYTES, FLAG_CHECKSUM,
  drainMessages, messageStats, tryWriteMessage, writeMessage } = shmq
export default shmq
