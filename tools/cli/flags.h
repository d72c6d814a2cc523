// The programs' flag parsing, on CLI11 (header-only, Debian libcli11-dev): one small layer so every
// program gets the same rules. "--flag value" and "--flag=value" are one thing; a flag's setter
// runs at each occurrence, in command-line order, so the last one given wins and a bad value stops
// the parse right there; switches take no value ("--switch=..." is refused); --help prints the
// program's hand-written usage and parse() returns false. Values are checked by the setters with
// the validators of tools/cli/cli.h (parse_int, split_list, parse_precision, choose_executor),
// which throw farsee::Error naming the flag and the text; CLI11's own errors (an unknown option, a
// missing value, an extra argument) become farsee::Error with CLI11's message, which names the
// option, so run_program reports both the same way: "<program>: error: ...", exit status 1.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <iostream>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "tools/cli/cli.h"

namespace farsee::tools {

class Flags {
 public:
  // `usage`: the --help text, printed as is.
  Flags(const std::string& program, std::string usage)
      : app_(program, program), usage_(std::move(usage)) {
    app_.set_help_flag();  // ours below: it stops the parse where it stands, as a setter does
    app_.option_defaults()->disable_flag_override();
    switch_("--help", [] { throw CLI::CallForHelp(); });
  }

  // --name VALUE / --name=VALUE; `names` may hold a short form too ("-o,--out").
  CLI::Option* value(const std::string& names, std::function<void(const std::string&)> set) {
    return app_.add_option_function<std::string>(names, std::move(set))
        ->trigger_on_parse()
        ->type_name("VALUE");
  }
  CLI::Option* text(const std::string& names, std::string& out) {
    return value(names, [&out](const std::string& v) { out = v; });
  }
  // A checked integer >= min_value (parse_int).
  CLI::Option* integer(const std::string& name, int& out, int min_value) {
    return value(name, [&out, name, min_value](const std::string& v) {
      out = parse_int(v, name.c_str(), min_value);
    });
  }
  // --name alone.
  CLI::Option* switch_(const std::string& name, std::function<void()> set) {
    switches_.insert(name);
    return app_.add_flag_callback(name, std::move(set))->trigger_on_parse();
  }
  CLI::Option* set_true(const std::string& name, bool& out) {
    return switch_(name, [&out] { out = true; });
  }
  // The positional arguments, in order; without this any positional argument is an error.
  CLI::Option* positionals(const std::string& name, std::vector<std::string>& out) {
    return app_.add_option(name, out);
  }

  // Parses args (without the program's name). False when --help was given (usage printed on
  // stdout); any malformed argument throws farsee::Error.
  bool parse(const std::vector<std::string>& args) {
    std::vector<std::string> reversed;  // as CLI11 takes them
    for (auto a = args.rbegin(); a != args.rend(); ++a) {
      const size_t eq = a->compare(0, 2, "--") == 0 ? a->find('=') : std::string::npos;
      if (eq == std::string::npos) {
        reversed.push_back(*a);
        continue;
      }
      // CLI11 reads "--switch=true" as "--switch" and "--flag=" as "--flag NEXT"; here the one is
      // refused and the other is the empty value.
      FARSEE_REQUIRE(!switches_.count(a->substr(0, eq)), a->substr(0, eq) << " takes no value");
      if (eq + 1 < a->size()) {
        reversed.push_back(*a);
      } else {
        reversed.push_back("");
        reversed.push_back(a->substr(0, eq));
      }
    }
    try {
      app_.parse(reversed);
    } catch (const CLI::CallForHelp&) {
      std::cout << usage_;
      return false;
    } catch (
        const CLI::ExtrasError&) {  // CLI11's message lists them all, backwards; ours, the first
      const std::string arg = app_.remaining().at(0), first = arg.substr(0, arg.find('='));
      FARSEE_REQUIRE(first[0] != '-', "unknown option '" << first << "' (see --help)");
      FARSEE_REQUIRE(false, "unexpected argument '" << first << "' (see --help)");
    } catch (const CLI::ParseError& e) {
      throw Error(std::string(e.what()) + " (see --help)");
    }
    return true;
  }
  bool parse(int argc, char** argv) {
    return parse(std::vector<std::string>(argv + (argc > 0 ? 1 : 0), argv + argc));
  }

 private:
  CLI::App app_;
  std::string usage_;
  std::set<std::string> switches_;  // their long names
};

}  // namespace farsee::tools
