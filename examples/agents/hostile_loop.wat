;; hostile: never returns from handle_message (stopped at its deadline).
(module
  (memory (export "memory") 1)
  (func (export "caxton_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "handle_message") (param i32 i32) (result i32)
    (loop $forever (br $forever))
    (i32.const 0)))
