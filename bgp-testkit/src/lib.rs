//! Test helpers: realistic table generators and captured messages. Being written.
