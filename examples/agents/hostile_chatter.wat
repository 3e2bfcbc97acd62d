;; hostile: logs a 4 KiB line in a loop until its deadline: log volume must stay bounded.
(module
  (import "caxton" "log" (func $log (param i32 i32 i32)))
  (memory (export "memory") 1)
  (func (export "caxton_alloc") (param i32) (result i32) (i32.const 8192))
  (func (export "handle_message") (param i32 i32) (result i32)
    (memory.fill (i32.const 0) (i32.const 120) (i32.const 4096))  ;; "xxxx..."
    (loop $forever
      (call $log (i32.const 1) (i32.const 0) (i32.const 4096))
      (br $forever))
    (i32.const 0)))
