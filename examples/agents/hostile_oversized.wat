;; hostile: tries to send a 16 MiB message (refused by the host) and reports the result code.
(module
  (import "caxton" "send_message" (func $send (param i32 i32) (result i32)))
  (import "caxton" "log" (func $log (param i32 i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "send refused")
  (func (export "caxton_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "handle_message") (param i32 i32) (result i32)
    (if (i32.lt_s (call $send (i32.const 0) (i32.const 16777216)) (i32.const 0))
      (then (call $log (i32.const 2) (i32.const 0) (i32.const 12))))
    (i32.const 0)))
