;; hostile: sends to a receiver that does not exist, in a loop, until its deadline.
;; Every send is refused (-3) and dead-lettered: the dead-letter queue must stay bounded.
(module
  (import "caxton" "send_message" (func $send (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "{\"performative\":\"inform\",\"receiver\":\"nobody\",\"content\":1}")
  (func (export "caxton_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "handle_message") (param i32 i32) (result i32)
    (loop $forever
      (drop (call $send (i32.const 0) (i32.const 57)))
      (br $forever))
    (i32.const 0)))
