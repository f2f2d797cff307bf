#!/usr/bin/env node
// KafkaJS driver: see clients/README.md for the workload.
// KafkaJS has gzip built in; snappy comes from kafkajs-snappy, and lz4/zstd
// from small adapters below over lz4-napi (LZ4 frame format, as Kafka uses)
// and @mongodb-js/zstd. KafkaJS has no topic ids (its Metadata version is
// too old) and consumes only through a consumer group.
'use strict'
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1'

const { Kafka, CompressionTypes, CompressionCodecs, logLevel } = require('kafkajs')
const SnappyCodec = require('kafkajs-snappy')
const lz4 = require('lz4-napi')
const zstd = require('@mongodb-js/zstd')

CompressionCodecs[CompressionTypes.Snappy] = SnappyCodec
CompressionCodecs[CompressionTypes.LZ4] = () => ({
  compress: async encoder => lz4.compressFrame(encoder.buffer),
  decompress: async buffer => lz4.decompressFrame(buffer),
})
CompressionCodecs[CompressionTypes.ZSTD] = () => ({
  compress: async encoder => zstd.compress(encoder.buffer, 3),
  decompress: async buffer => zstd.decompress(buffer),
})

const NAME = 'kafkajs'
const PARTITIONS = 3
const PER_CODEC = 30
const CODEC_TYPES = {
  none: CompressionTypes.None,
  gzip: CompressionTypes.GZIP,
  snappy: CompressionTypes.Snappy,
  lz4: CompressionTypes.LZ4,
  zstd: CompressionTypes.ZSTD,
}

class Failure extends Error {}

function parseArgs(argv) {
  const a = { phase: 'all', codecs: Object.keys(CODEC_TYPES), timeout: 60 }
  for (let i = 0; i < argv.length; i++) {
    const v = argv[i + 1]
    switch (argv[i]) {
      case '--bootstrap': a.bootstrap = v; i++; break
      case '--topic': a.topic = v; i++; break
      case '--phase': a.phase = v; i++; break
      case '--codecs': a.codecs = v.split(',').filter(Boolean); i++; break
      case '--timeout': a.timeout = Number(v); i++; break
      default:
        console.error(`unknown argument ${argv[i]}`)
        process.exit(2)
    }
  }
  if (!a.bootstrap || !a.topic || !['all', 'produce', 'produce-consume', 'verify-only', 'group', 'auto-create'].includes(a.phase)) {
    console.error('usage: driver.js --bootstrap HOST:PORT --topic NAME [--phase all|produce|produce-consume|verify-only|auto-create] [--codecs a,b]')
    process.exit(2)
  }
  return a
}

function records(codec) {
  const out = []
  for (let i = 0; i < PER_CODEC; i++) {
    const p = i % PARTITIONS
    out.push({
      partition: p,
      key: `key-${codec}-${i}`,
      value: `value-${codec}-${i}:` + 'sluice-'.repeat((i % 7) * 5),
      headers: [['codec', codec], ['partition', String(p)]],
    })
  }
  return out
}

function expected(codecs) {
  const m = {}
  for (let p = 0; p < PARTITIONS; p++) m[p] = []
  for (const c of codecs) for (const r of records(c)) m[r.partition].push(r)
  return m
}

const step = s => console.log(`[${new Date().toISOString().slice(11, 19)}] ${s}`)
const sleep = ms => new Promise(r => setTimeout(r, ms))

async function waitTopic(admin, a, present) {
  const deadline = Date.now() + a.timeout * 1000
  while (Date.now() < deadline) {
    const names = await admin.listTopics()
    if (!present && !names.includes(a.topic)) return
    if (present && names.includes(a.topic)) {
      const md = await admin.fetchTopicMetadata({ topics: [a.topic] })
      const t = md.topics.find(t => t.name === a.topic)
      if (t && t.partitions.length === PARTITIONS && t.partitions.every(p => p.leader >= 0)) return
    }
    await sleep(200)
  }
  throw new Failure(`topic ${a.topic} ${present ? 'not visible with 3 partitions' : 'still listed'} after ${a.timeout}s`)
}

async function produce(kafka, a) {
  for (const codec of a.codecs) {
    step(`produce ${PER_CODEC} records with compression ${codec}`)
    const producer = kafka.producer({ idempotent: false, maxInFlightRequests: 1, allowAutoTopicCreation: false })
    await producer.connect()
    try {
      // One send per partition so each becomes a multi-record (compressed) batch.
      for (let p = 0; p < PARTITIONS; p++) {
        const messages = records(codec)
          .filter(r => r.partition === p)
          .map(r => ({ partition: r.partition, key: r.key, value: r.value, headers: Object.fromEntries(r.headers) }))
        const res = await producer.send({ topic: a.topic, acks: -1, timeout: a.timeout * 1000, compression: CODEC_TYPES[codec], messages })
        for (const r of res) if (r.errorCode !== 0) throw new Failure(`produce ${codec} partition ${r.partition}: error ${r.errorCode}`)
      }
    } finally {
      await producer.disconnect()
    }
  }
}

// Produces to a topic nobody created (KafkaJS allows auto-creation by
// default); every send must succeed without an error reaching the caller.
async function produceAutoCreate(kafka, a) {
  step(`produce ${PER_CODEC} records to ${a.topic}, which does not exist yet`)
  const producer = kafka.producer({ idempotent: false })
  await producer.connect()
  let delivered = 0
  try {
    for (let i = 0; i < PER_CODEC; i++) {
      const res = await producer.send({ topic: a.topic, acks: -1, timeout: a.timeout * 1000, messages: [{ key: `key-auto-${i}`, value: `value-auto-${i}` }] })
      for (const r of res) if (r.errorCode !== 0) throw new Failure(`produce to a new topic: error ${r.errorCode}`)
      delivered++
    }
  } finally {
    await producer.disconnect()
  }
  console.log(`DELIVERED=${delivered}`)
}

async function consume(kafka, admin, a) {
  const want = expected(a.codecs)
  const total = Object.values(want).reduce((n, l) => n + l.length, 0)
  step('consume every partition from the beginning (consumer group)')
  const got = {}
  for (let p = 0; p < PARTITIONS; p++) got[p] = []
  let n = 0
  const consumer = kafka.consumer({ groupId: `sluice-driver-${a.topic}-${a.phase}-${process.pid}`, allowAutoTopicCreation: false })
  await consumer.connect()
  let done
  let crash = null
  const finished = new Promise(r => { done = r })
  consumer.on(consumer.events.CRASH, e => {
    crash = e.payload && e.payload.error
    done()
  })
  try {
    await consumer.subscribe({ topics: [a.topic], fromBeginning: true })
    await consumer.run({
      autoCommit: false,
      eachMessage: async ({ partition, message }) => {
        got[partition].push(message)
        if (++n >= total) done()
      },
    })
    const timer = sleep(a.timeout * 1000).then(() => 'timeout')
    if ((await Promise.race([finished, timer])) === 'timeout' && n < total) {
      // fall through: the per-partition checks report what is missing
    }
  } finally {
    await consumer.disconnect()
  }
  if (crash) throw new Failure(`consumer crashed: ${crash.name}: ${crash.message}`)
  for (let p = 0; p < PARTITIONS; p++) {
    const g = got[p]
    const w = want[p]
    if (g.length !== w.length) throw new Failure(`partition ${p}: consumed ${g.length} records, expected ${w.length}`)
    g.forEach((m, i) => {
      const e = w[i]
      if (Number(m.offset) !== i) throw new Failure(`partition ${p}: record #${i} has offset ${m.offset}`)
      const k = m.key && m.key.toString()
      const v = m.value && m.value.toString()
      if (k !== e.key || v !== e.value) throw new Failure(`partition ${p} offset ${i}: got key=${k} value=${v}, expected key=${e.key} value=${e.value}`)
      const hs = JSON.stringify(Object.entries(m.headers || {}).map(([hk, hv]) => [hk, hv.toString()]))
      if (hs !== JSON.stringify(e.headers)) throw new Failure(`partition ${p} offset ${i}: got headers ${hs}, expected ${JSON.stringify(e.headers)}`)
    })
  }

  step('list offsets (earliest, latest)')
  const offs = await admin.fetchTopicOffsets(a.topic)
  for (let p = 0; p < PARTITIONS; p++) {
    const o = offs.find(x => x.partition === p)
    if (!o || Number(o.low) !== 0 || Number(o.high) !== want[p].length) {
      throw new Failure(`list offsets partition ${p}: ${JSON.stringify(o)}, expected low 0 high ${want[p].length}`)
    }
  }
}

// Phase "group": one consumer-group member for crates/sluice/tests/group_clients.rs. It subscribes to the
// topic in group "<topic>-group" (from the beginning, no auto-commit) and prints ASSIGNED [..],
// RECORD p offset and COMMITTED p next lines until its stdin is closed, then leaves the group.
async function groupMember(kafka, a) {
  const consumer = kafka.consumer({ groupId: `${a.topic}-group`, sessionTimeout: 10000, heartbeatInterval: 1000 })
  await consumer.connect()
  consumer.on(consumer.events.GROUP_JOIN, e => {
    const ps = [...(e.payload.memberAssignment[a.topic] || [])].sort((x, y) => x - y)
    console.log(`ASSIGNED [${ps.join(', ')}]`)
  })
  await consumer.subscribe({ topics: [a.topic], fromBeginning: true })
  await consumer.run({
    autoCommit: false,
    eachMessage: async ({ topic, partition, message }) => {
      console.log(`RECORD ${partition} ${message.offset}`)
      const next = (BigInt(message.offset) + 1n).toString()
      await consumer.commitOffsets([{ topic, partition, offset: next }])
      console.log(`COMMITTED ${partition} ${next}`)
    },
  })
  await new Promise(resolve => {
    process.stdin.on('end', resolve)
    process.stdin.on('close', resolve)
    process.stdin.resume()
  })
  await consumer.disconnect()
}

async function main() {
  const a = parseArgs(process.argv.slice(2))
  const kafka = new Kafka({ clientId: 'sluice-driver', brokers: [a.bootstrap], logLevel: logLevel.WARN, retry: { retries: 8 } })
  if (a.phase === 'group') {
    await groupMember(kafka, a)
    return
  }
  if (a.phase === 'auto-create') {
    await produceAutoCreate(kafka, a)
    return
  }
  const admin = kafka.admin()
  await admin.connect()
  try {
    if (a.phase === 'all' || a.phase === 'produce' || a.phase === 'produce-consume') {
      step(`create topic ${a.topic} with ${PARTITIONS} partitions`)
      const created = await admin.createTopics({ topics: [{ topic: a.topic, numPartitions: PARTITIONS, replicationFactor: 1 }], waitForLeaders: true })
      if (!created) throw new Failure(`createTopics: topic ${a.topic} already exists`)
      await waitTopic(admin, a, true)
      await produce(kafka, a)
    }
    if (a.phase === 'all' || a.phase === 'produce-consume') {
      await consume(kafka, admin, a)
    }
    if (a.phase === 'all' || a.phase === 'verify-only') {
      await waitTopic(admin, a, true)
      await consume(kafka, admin, a)
      step(`delete topic ${a.topic}`)
      await admin.deleteTopics({ topics: [a.topic], timeout: a.timeout * 1000 })
      await waitTopic(admin, a, false)
    }
  } finally {
    await admin.disconnect()
  }
}

main().then(
  () => { console.log(`OK ${NAME}`); process.exit(0) },
  e => {
    if (!(e instanceof Failure)) console.log(e && e.stack)
    console.log(`FAIL ${NAME}: ${e && e.message}`)
    process.exit(1)
  },
)
