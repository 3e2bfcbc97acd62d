;; hostile: grows a table until the store limit refuses, then faults.
(module
  (memory (export "memory") 1)
  (table $t 1 funcref)
  (func (export "caxton_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "handle_message") (param i32 i32) (result i32)
    (loop $grow
      (br_if $grow (i32.ne (table.grow $t (ref.null func) (i32.const 65536)) (i32.const -1))))
    unreachable))
