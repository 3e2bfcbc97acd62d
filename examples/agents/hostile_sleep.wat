;; hostile: asks WASI to sleep for 30 s (poll_oneoff with a relative clock
;; subscription). The sleep counts against the deadline (docs/agent-abi.md).
(module
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  ;; The subscription at 0 (48 bytes): userdata 0, tag 0 (clock), clock id 1
  ;; (monotonic) at 16, timeout 30e9 ns at 24, precision 0, flags 0 (relative).
  (data (i32.const 16) "\01\00\00\00")
  (data (i32.const 24) "\00\ac\23\fc\06\00\00\00")
  (func (export "caxton_alloc") (param i32) (result i32) (i32.const 1024))
  ;; The event goes to 64, the number of events to 128.
  (func (export "handle_message") (param i32 i32) (result i32)
    (call $poll (i32.const 0) (i32.const 64) (i32.const 1) (i32.const 128))))
