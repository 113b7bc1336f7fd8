/*
 * boundary.hpp
 *		Crossing between PostgreSQL's longjmp-based errors and C++ exceptions.
 *
 * Two rules, one helper each:
 *
 *  1. PostgreSQL calls C++ (SQL functions, hooks, callbacks): the C-linkage
 *	   shim runs the C++ body through cxx_entry().  Whatever the body throws is
 *	   caught there; once every C++ frame is gone and no catch block is active,
 *	   a PostgreSQL error is re-raised with its full ErrorData (SQLSTATE,
 *	   detail, hint, context), and any other exception becomes an ERROR.
 *
 *  2. C++ calls PostgreSQL from a frame that owns objects with destructors:
 *	   the call goes through pg_call(), which catches the longjmp right there,
 *	   copies the ErrorData and throws PgError, so the destructors run.
 *
 * Code that only talks to PostgreSQL, with plain-data locals, needs neither.
 */
#pragma once

#include "pg/postgres_headers.hpp"

#include <exception>
#include <new>
#include <type_traits>
#include <utility>

namespace child_txn
{

/* A PostgreSQL error travelling as a C++ exception. */
class PgError final : public std::exception
{
  public:
	explicit PgError(ErrorData *edata) noexcept : edata_(edata) {}

	/* The copied error; allocated in the context that was current at the call. */
	ErrorData *edata() const noexcept { return edata_; }

	const char *what() const noexcept override
	{
		return edata_ && edata_->message ? edata_->message : "PostgreSQL error";
	}

  private:
	ErrorData *edata_;
};

namespace detail
{
/* Out of line so that the template below stays small. */
[[noreturn]] void throw_current_pg_error(MemoryContext cxt);
[[noreturn]] void rethrow_outside_catch(ErrorData *edata, bool out_of_memory,
										const char *message);
}

/*
 * Run fn(), a call into PostgreSQL that may ereport(ERROR), and turn such an
 * error into PgError.  fn must not itself own objects with destructors.
 */
template <typename Fn>
decltype(auto)
pg_call(Fn &&fn)
{
	using R = std::invoke_result_t<Fn &>;
	MemoryContext cxt = CurrentMemoryContext;
	bool		failed = false;

	if constexpr (std::is_void_v<R>)
	{
		PG_TRY();
		{
			fn();
		}
		PG_CATCH();
		{
			failed = true;
		}
		PG_END_TRY();
		if (failed)
			detail::throw_current_pg_error(cxt);
	}
	else
	{
		static_assert(std::is_trivially_copyable_v<R>,
					  "pg_call results must be plain data");
		R			result{};

		PG_TRY();
		{
			result = fn();
		}
		PG_CATCH();
		{
			failed = true;
		}
		PG_END_TRY();
		if (failed)
			detail::throw_current_pg_error(cxt);
		return result;
	}
}

/*
 * Run a C++ body on behalf of PostgreSQL.  Nothing thrown escapes: the error
 * is re-raised as a PostgreSQL ERROR after the catch block has ended.
 */
template <typename Fn>
auto
cxx_entry(Fn &&fn) -> std::invoke_result_t<Fn &>
{
	ErrorData  *edata = nullptr;
	bool		oom = false;
	char		message[256] = "unknown C++ exception";

	try
	{
		return fn();
	}
	catch (const PgError &e)
	{
		edata = e.edata();
	}
	catch (const std::bad_alloc &)
	{
		oom = true;
	}
	catch (const std::exception &e)
	{
		strlcpy(message, e.what(), sizeof(message));
	}
	catch (...)
	{
	}
	/* No catch block is active here: longjmp is safe again. */
	detail::rethrow_outside_catch(edata, oom, message);
}

} // namespace child_txn
