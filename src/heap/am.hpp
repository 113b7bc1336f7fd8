/*
 * am.hpp
 *		The child_txn_heap table access method (see am.cpp).
 */
#pragma once

#include "pg/postgres_headers.hpp"

namespace child_txn
{
namespace heap
{

/*
 * Set at the very start of a child worker, before any relation is opened:
 * the handler gives child workers the intent-aware routine, everybody else
 * heap's own.
 */
extern bool in_child_worker;

/* Executor and planner hooks that keep parallel query out of children
 * while ancestors' writes are present; called once from _PG_init. */
void		install_hooks();

} // namespace heap
} // namespace child_txn
