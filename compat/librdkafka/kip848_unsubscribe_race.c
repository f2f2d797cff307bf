/* Forces the librdkafka 2.12.1 KIP-848 client race behind the intermittent
 * 0045_subscribe_many_updates failure (TEST_CONSUMER_GROUP_PROTOCOL=consumer),
 * against any broker.
 *
 * The test changes the subscription several times and then unsubscribes and
 * subscribes again, back to back (about 2 ms in all, no poll in between).
 * The first change goes out in a ConsumerGroupHeartbeat whose answer revokes
 * the topics that left the subscription. If that answer is served by the
 * client just before the unsubscribe op, the unsubscribe arrives while the
 * client is in join-state wait-incr-unassign-to-complete with the "assign
 * after revoke" of the reconciliation still pending: when the unassign is
 * done the client runs that assign (-> wait-assign-call -> steady), sends its
 * leave heartbeat (epoch -1) from `steady`, never goes back to `init`, and
 * sends no heartbeat for the new subscription (in the compat run the same
 * path later rejoined with a null TopicPartitions, refused INVALID_REQUEST by
 * both brokers). Kafka 4.1.2 answers heartbeats that write group records
 * after its group.coordinator.append.linger.ms (default 5 ms; 6-14 ms here),
 * usually after the test's calls, so the test mostly passes there; Sluice
 * answers in ~1-2 ms and hits the race more often.
 *
 * This program repeats that sequence with a pause (fixed or random) between
 * the subscription changes and the unsubscribe, so the answer lands inside
 * the window on any broker, and counts the rounds whose final assignment
 * never arrives. One record per partition is consumed first, so the
 * revocation also waits for an OffsetCommit, which widens the window.
 *
 * build: cc -O1 -o race kip848_unsubscribe_race.c -I$RDK/src -L$RDK/src -lrdkafka
 * usage: LD_LIBRARY_PATH=$RDK/src ./race HOST:PORT [DELAY_MS=20 | MIN_MS:MAX_MS] [ROUNDS=10]
 *        (MIN:MAX sleeps a random delay in that range; RDK_DEBUG=cgrp logs the client's
 *        group state machine to stderr)
 * exit status: 0 if every round got its assignment, 1 if any round got stuck. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "rdkafka.h"

#define TOPICS 12
#define PARTS 4
#define WINDOW 5

static char topics[TOPICS][64];

static void die(const char *what, const char *why) {
        fprintf(stderr, "%s: %s\n", what, why);
        exit(2);
}

static rd_kafka_conf_t *base_conf(const char *bootstrap) {
        char err[256];
        rd_kafka_conf_t *c = rd_kafka_conf_new();
        if (rd_kafka_conf_set(c, "bootstrap.servers", bootstrap, err, sizeof err))
                die("conf", err);
        if (getenv("RDK_DEBUG") &&
            rd_kafka_conf_set(c, "debug", getenv("RDK_DEBUG"), err, sizeof err))
                die("debug", err);
        return c;
}

static void create_topics(const char *bootstrap) {
        char err[256];
        rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, base_conf(bootstrap), err, sizeof err);
        if (!rk)
                die("producer", err);
        rd_kafka_NewTopic_t *nt[TOPICS];
        for (int i = 0; i < TOPICS; i++)
                nt[i] = rd_kafka_NewTopic_new(topics[i], PARTS, 1, err, sizeof err);
        rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
        rd_kafka_CreateTopics(rk, nt, TOPICS, NULL, q);
        rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
        if (!ev || rd_kafka_event_error(ev))
                die("CreateTopics", ev ? rd_kafka_event_error_string(ev) : "timeout");
        size_t n;
        const rd_kafka_topic_result_t **res =
            rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
        for (size_t i = 0; i < n; i++)
                if (rd_kafka_topic_result_error(res[i]))
                        die(rd_kafka_topic_result_name(res[i]),
                            rd_kafka_topic_result_error_string(res[i]));
        rd_kafka_event_destroy(ev);
        for (int i = 0; i < TOPICS; i++)
                rd_kafka_NewTopic_destroy(nt[i]);
        rd_kafka_queue_destroy(q);
        sleep(1);
        /* One record per partition: the consumer then has offsets to commit
         * when partitions are revoked, which keeps the revocation in progress
         * for an OffsetCommit round trip (the race window). */
        for (int i = 0; i < TOPICS; i++)
                for (int p = 0; p < PARTS; p++)
                        if (rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topics[i]),
                                              RD_KAFKA_V_PARTITION(p),
                                              RD_KAFKA_V_VALUE("x", 1), RD_KAFKA_V_END))
                                die("produce", topics[i]);
        if (rd_kafka_flush(rk, 30000))
                die("produce", "flush timed out");
        rd_kafka_destroy(rk);
}

/* Polls until `want` records arrived or timeout_ms passed. */
static int consume(rd_kafka_t *rk, int want, int timeout_ms) {
        int got = 0;
        for (int waited = 0; got < want && waited < timeout_ms; waited += 100) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
                if (m) {
                        got += !m->err;
                        rd_kafka_message_destroy(m);
                }
        }
        return got;
}

static void subscribe(rd_kafka_t *rk, int first) {
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(WINDOW);
        for (int i = first; i < first + WINDOW; i++)
                rd_kafka_topic_partition_list_add(l, topics[i], RD_KAFKA_PARTITION_UA);
        rd_kafka_resp_err_t e = rd_kafka_subscribe(rk, l);
        if (e)
                die("subscribe", rd_kafka_err2str(e));
        rd_kafka_topic_partition_list_destroy(l);
}

/* Polls until the assignment is exactly WINDOW*PARTS partitions of topics
 * [first, first+WINDOW), or timeout_ms passes. */
static int wait_assignment(rd_kafka_t *rk, int first, int timeout_ms) {
        for (int waited = 0; waited < timeout_ms; waited += 100) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
                if (m)
                        rd_kafka_message_destroy(m);
                rd_kafka_topic_partition_list_t *a = NULL;
                if (rd_kafka_assignment(rk, &a))
                        continue;
                int ok = a->cnt == WINDOW * PARTS;
                for (int i = 0; ok && i < a->cnt; i++) {
                        int found = 0;
                        for (int t = first; t < first + WINDOW; t++)
                                found |= !strcmp(a->elems[i].topic, topics[t]);
                        ok = found;
                }
                rd_kafka_topic_partition_list_destroy(a);
                if (ok)
                        return 1;
        }
        return 0;
}

int main(int argc, char **argv) {
        if (argc < 2)
                die("usage", "race HOST:PORT [DELAY_MS] [ROUNDS]");
        const char *bootstrap = argv[1];
        /* DELAY: N ms, or A:B for a random delay in [A, B) ms (microsecond steps). */
        int delay_ms = argc > 2 ? atoi(argv[2]) : 20, delay_max = delay_ms;
        if (argc > 2 && strchr(argv[2], ':'))
                delay_max = atoi(strchr(argv[2], ':') + 1);
        int rounds = argc > 3 ? atoi(argv[3]) : 10;
        srand((unsigned)time(NULL) ^ (unsigned)getpid());
        int run = rand();
        for (int i = 0; i < TOPICS; i++)
                snprintf(topics[i], sizeof topics[i], "kip848_race_%08x_t%d", run, i);
        create_topics(bootstrap);

        int stuck = 0;
        for (int r = 0; r < rounds; r++) {
                char err[256], group[64];
                snprintf(group, sizeof group, "kip848_race_%08x_g%d", run, r);
                rd_kafka_conf_t *c = base_conf(bootstrap);
                rd_kafka_conf_set(c, "group.id", group, err, sizeof err);
                if (rd_kafka_conf_set(c, "group.protocol", "consumer", err, sizeof err))
                        die("group.protocol", err);
                rd_kafka_conf_set(c, "auto.offset.reset", "earliest", err, sizeof err);
                rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, c, err, sizeof err);
                if (!rk)
                        die("consumer", err);
                rd_kafka_poll_set_consumer(rk);

                subscribe(rk, 0);
                if (!wait_assignment(rk, 0, 30000))
                        die("setup", "first assignment never came");
                consume(rk, WINDOW * PARTS, 2000);
                /* As the test: four subscription changes back to back (each
                 * revokes one topic and adds one), a pause, the unsubscribe,
                 * and a fifth subscription. */
                for (int s = 1; s <= 4; s++)
                        subscribe(rk, s);
                int us = delay_ms * 1000;
                if (delay_max > delay_ms)
                        us += rand() % ((delay_max - delay_ms) * 1000);
                usleep(us);
                rd_kafka_unsubscribe(rk);
                subscribe(rk, TOPICS - WINDOW);
                int ok = wait_assignment(rk, TOPICS - WINDOW, 15000);
                printf("round %d (delay %d us): %s\n", r, us,
                       ok ? "assigned" : "STUCK: no assignment within 15 s");
                fflush(stdout);
                stuck += !ok;
                rd_kafka_consumer_close(rk);
                rd_kafka_destroy(rk);
        }
        printf("%d of %d rounds stuck\n", stuck, rounds);
        return stuck ? 1 : 0;
}
