/*
 * boundary.cpp
 *		Out-of-line halves of the error boundary (see boundary.hpp), and the
 *		SQL-callable self test that proves it.
 */
#include "pg/boundary.hpp"

#include <stdexcept>
#include <string>

namespace child_txn
{
namespace detail
{

/* Copy the error being handled into cxt, clear PostgreSQL's state, throw. */
void
throw_current_pg_error(MemoryContext cxt)
{
	MemoryContextSwitchTo(cxt);
	ErrorData  *edata = CopyErrorData();

	FlushErrorState();
	throw PgError(edata);
}

/* Raise what cxx_entry caught as a PostgreSQL ERROR. */
void
rethrow_outside_catch(ErrorData *edata, bool out_of_memory, const char *message)
{
	if (edata != nullptr)
		ReThrowError(edata);
	if (out_of_memory)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory in child_txn")));
	ereport(ERROR,
			(errcode(ERRCODE_INTERNAL_ERROR),
			 errmsg("child_txn internal error: %s", message)));
	pg_unreachable();
}

} // namespace detail

/* Destructors that ran while an error crossed the boundary (for the test). */
static int64 boundary_destructors_run = 0;

namespace
{
/* An object whose destructor must run whichever way its frame is left. */
class Witness
{
  public:
	Witness() : text_("a C++ object with a destructor") {}
	~Witness() { boundary_destructors_run++; }
	std::size_t size() const { return text_.size(); }

  private:
	std::string text_;
};

/* The C++ body of the self test; see child_txn_boundary_selftest. */
Datum
boundary_selftest(const char *kind)
{
	Witness		witness;

	if (strcmp(kind, "pg_error") == 0)
	{
		/* A PostgreSQL error raised under C++: must keep its SQLSTATE. */
		pg_call([] {
			return DirectFunctionCall1(int4in,
									   CStringGetDatum("not a number"));
		});
	}
	else if (strcmp(kind, "cxx_exception") == 0)
		throw std::runtime_error("exception thrown by C++ code");
	else if (strcmp(kind, "bad_alloc") == 0)
		throw std::bad_alloc();
	else if (strcmp(kind, "unknown") == 0)
		throw 42;
	else if (strcmp(kind, "none") != 0)
		pg_call([kind] {
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown self-test kind \"%s\"", kind),
					 errhint("Use pg_error, cxx_exception, bad_alloc, unknown "
							 "or none.")));
		});
	return Int64GetDatum(static_cast<int64>(witness.size()));
}
} // namespace

} // namespace child_txn

extern "C"
{
PG_FUNCTION_INFO_V1(child_txn_boundary_selftest);
PG_FUNCTION_INFO_V1(child_txn_boundary_destructors);
}

/*
 * child_txn._boundary_selftest(kind text) -> bigint
 *		Raise an error of the given kind under C++ frames; used by the
 *		regression tests to prove the boundary.  Superuser only (REVOKEd).
 */
extern "C" Datum
child_txn_boundary_selftest(PG_FUNCTION_ARGS)
{
	const char *kind = text_to_cstring(PG_GETARG_TEXT_PP(0));

	return child_txn::cxx_entry(
		[kind] { return child_txn::boundary_selftest(kind); });
}

/* child_txn._boundary_destructors() -> bigint: destructors run so far. */
extern "C" Datum
child_txn_boundary_destructors(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT64(child_txn::boundary_destructors_run);
}
