//! Broker: connections, request handlers, partitions and coordinators.
