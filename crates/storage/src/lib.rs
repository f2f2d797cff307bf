//! Storage engine: `Log`, `LogSegment`, `OffsetIndex`, `TimeIndex`, recovery and retention.
