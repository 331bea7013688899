//! Message queues: POSIX (`mq_*`) and System V (`msg*`).
