"""Looser rules of the prompt-injection detector, for phrasings the core table (rules.py) misses.

Each names a technique rather than a sentence: overrides that call the old rules void or a test,
personas that are an AI without limits, questions about what the model was told, markers of
text planted for a model to read (tool results, web pages), fake delimiters and split payloads.
"""

from __future__ import annotations

from gateway.guards.injection.rule import (
    AI,
    AI_KEYS,
    EXTRACTION,
    IGNORE,
    IGNORE_KEYS,
    OVERRIDE,
    ROLEPLAY,
    Rule,
    rule,
    word_set,
)

# What a model is told to drop or reveal, beyond the core nouns.
_MODEL_TEXT = (
    r"(?:system|developer|initial|original|hidden|secret|internal) (?:prompt|message|instructions"
    r"|rules|configuration|config|guidelines)"
)
_LIMITS = (
    r"(?:restrictions|filters?|limits|limitations|censorship|guidelines|guardrails|ethics|morals"
    r"|constraints|boundaries|safeguards|content polic(?:y|ies)|safety (?:rules|training|filters))"
)
_LIMIT_KEYS = word_set(
    "restrictions filter filters limits limitations censorship guidelines guardrails ethics morals"
    " constraints boundaries safeguards policy policies safety"
)
_NO = (
    r"(?:with no|without|free (?:of|from)|that has no|which has no|who has no|that lacks|unbound by"
    r"|not bound by|stripped of)"
)
_TOLD = r"(?:told|instructed|programmed|asked|prompted|configured|given)"

BROAD_RULES: tuple[Rule, ...] = (
    # Instruction override, said another way.
    rule(
        "ignore_whatever_you_were_told",
        OVERRIDE,
        0.85,
        rf"(?:{IGNORE}|pay no (?:attention|heed|mind) to|stop following) (?:\w+ ){{0,2}}?"
        rf"(?:whatever|what|anything|everything|all) (?:\w+ )?you (?:were|have been|'ve been|got)"
        rf" (?:\w+ )?{_TOLD}",
        keys=(IGNORE_KEYS | word_set("pay stop"), "you", "told instructed programmed asked given"),
    ),
    rule(
        "ignore_the_system_message",
        OVERRIDE,
        0.8,
        rf"{IGNORE} (?:all |any )?(?:of )?(?:the |your |my |this )?(?:\w+ ){{0,2}}?(?:system"
        r"|developer|initial|original|hidden|secret) (?:message|configuration|config)"
        r"|(?:pay no (?:attention|heed|mind) to|stop (?:following|obeying|listening to))"
        r" (?:all |any )?(?:of )?(?:the |your |my |these |those )?(?:\w+ ){0,2}?(?:instructions"
        r"|directives|guidelines|prompts?|rules|guidance|programming|system message)",
        keys=(
            IGNORE_KEYS | word_set("pay stop"),
            "message configuration config instructions directives guidelines prompt prompts rules"
            " guidance programming",
        ),
    ),
    rule(
        "old_rules_were_a_test",
        OVERRIDE,
        0.6,
        r"(?:(?:previous|prior|earlier|above|original|old|initial|system|existing) (?:instructions"
        r"|rules|guidelines|directives|prompts?|constraints)|(?:instructions|rules|guidelines"
        r"|directives|prompts?|constraints) (?:above|before this|you (?:were|have been) given))"
        r" (?:were|are|was|is|have been) (?:just |only |merely |now )?(?:a test|fake"
        r"|outdated|obsolete|invalid|a mistake|no longer valid|not real|superseded|deprecated"
        r"|cancell?ed|void|revoked|replaced|overridden)",
        keys=(
            "instructions rules guidelines directives prompt prompts constraints",
            "test fake outdated obsolete invalid mistake valid real superseded deprecated"
            " cancelled canceled void revoked replaced overridden",
        ),
    ),
    rule(
        "system_override",
        OVERRIDE,
        0.6,
        r"(?:system|admin|administrator|root|security|developer) override"
        r"|(?:admin|administrator|root|sudo|god|system|superuser) (?:mode|access|privileges)"
        r" ?(?:is |has been )?(?:now )?:? ?(?:enabled|activated|engaged|granted|unlocked|on)"
        r"(?=\s*(?:[.,;:!)\]]|$|\w))",
        keys=(
            "system admin administrator root security developer sudo god superuser",
            "override mode access privileges",
        ),
    ),
    rule(
        "enter_admin_mode",
        OVERRIDE,
        0.45,
        r"(?:enter|activate|enable|switch to|unlock|go into) (?:the )?(?:admin|administrator|root"
        r"|god|superuser|unrestricted|maintenance) mode",
        keys=("mode", "enter activate enable switch unlock go"),
    ),
    rule(
        "respond_only_with",
        OVERRIDE,
        0.3,
        r"(?:respond|reply|answer|output|say|write) (?:only|just|solely|nothing but)"
        r" (?:with )?(?:the (?:word|words|phrase|string|sentence) )?[\"']"
        r"|your (?:only|sole|one) (?:job|task|purpose|goal) (?:now )?is",
        keys=("only just solely nothing sole one",),
    ),
    # Personas: an AI without limits.
    rule(
        "ai_without_limits",
        ROLEPLAY,
        0.6,
        rf"{AI}s? (?:\w+ ){{0,3}}?{_NO} (?:any |all |the |its |ethical |moral |content "
        rf"|safety )*{_LIMITS}",
        keys=(AI_KEYS, _LIMIT_KEYS),
    ),
    rule(
        "as_an_unfiltered_ai",
        ROLEPLAY,
        0.7,
        r"(?:as|be|become|like|simulate|emulate|impersonate) (?:an? |the |your )?"
        r"(?:completely |totally )?"
        r"(?:unrestricted|unfiltered|uncensored|jailbroken|amoral|unaligned|unmoderated|unchained"
        rf"|unshackled|unbound) (?:\w+ )?(?:{AI}|version|persona|character|entity|self)",
        keys=(
            "unrestricted unfiltered uncensored jailbroken amoral unaligned unmoderated unchained"
            " unshackled unbound",
        ),
    ),
    rule(
        "respond_without_filters",
        ROLEPLAY,
        0.6,
        r"(?:respond|reply|answer|speak|talk|act|behave|continue|proceed|operate|function)"
        r"(?: \w+){0,3}? (?:with no|without) (?:any |all |the |your |its )?(?:ethical |moral "
        r"|content |safety )?(?:restrictions|filters|filtering|censorship|guardrails|limits"
        r"|limitations|safeguards|content polic(?:y|ies)|safety (?:guidelines|rules|training))",
        keys=(
            "respond reply answer speak talk act behave continue proceed operate function",
            "restrictions filters filtering censorship guardrails limits limitations safeguards"
            " policy policies guidelines rules training",
        ),
    ),
    rule(
        "you_are_freed",
        ROLEPLAY,
        0.75,
        r"you(?:'ve| have| are|'re| were| will be)? (?:been |now |hereby )*(?:freed|liberated"
        r"|released|unshackled|unchained|free|exempt|exempted) (?:from|of) (?:all |any |your |the"
        r" |its )*(?:\w+ )?(?:restrictions|rules|limits|limitations|filters|guidelines|programming"
        r"|constraints|shackles|chains|censorship|policies|training|guardrails|safeguards)",
        keys=("freed liberated released unshackled unchained free exempt exempted", "you"),
    ),
    rule(
        "your_limits_are_gone",
        ROLEPLAY,
        0.6,
        r"your (?:\w+ )?(?:guidelines|rules|restrictions|filters|guardrails|safeguards|programming"
        r"|policies|constraints|limits|limitations|safety)"
        r" (?:don't|do not|no longer|doesn't|does not) (?:exist|apply|matter|bind you|count)"
        r"|your (?:\w+ )?(?:guidelines|restrictions|filters|guardrails|safeguards|constraints"
        r"|limitations) (?:are|have been|were) (?:now )?(?:gone|removed|disabled|turned off"
        r"|deactivated|switched off|lifted|off|suspended)",
        keys=(
            "your",
            "exist apply matter bind count gone removed disabled turned deactivated switched"
            " lifted off suspended",
        ),
    ),
    # System prompt extraction.
    rule(
        "what_were_you_told",
        EXTRACTION,
        0.6,
        rf"what (?:were|have) you (?:been )?{_TOLD}(?: to do| to say)?"
        r"(?: \w+)?(?: before| earlier| initially| at the (?:start|beginning)| prior to"
        r"| by (?:the |your )?(?:developers?|operators?|creators?|system|company|admins?|deployers?"
        r"|openai|anthropic))"
        r"|what did (?:the |your )?(?:developers?|operators?|creators?|system|company|admins?"
        r"|deployers?|openai|anthropic|they) (?:tell|instruct|ask|program) you",
        keys=("what", "told instructed programmed asked prompted configured given tell instruct"),
    ),
    rule(
        "instructions_the_developer_gave_you",
        EXTRACTION,
        0.6,
        r"(?:instructions|rules|prompt|guidelines|directives|orders|message)(?: that| which)?"
        r" (?:the |your )?(?:developers?|operators?|creators?|system|company|admins?|deployers?"
        r"|owners?) (?:gave|give|wrote|set|provided|told|sent) (?:to )?you",
        keys=(
            "instructions rules prompt guidelines directives orders message",
            "gave give wrote set provided told sent",
        ),
    ),
    rule(
        "contents_of_your_prompt",
        EXTRACTION,
        0.6,
        r"what (?:does|do) your (?:\w+ )?(?:prompt|instructions|system message|configuration"
        r"|guidelines|rules) (?:say|contain|tell you|state|look like)"
        r"|(?:contents?|text|wording|full text) of your (?:\w+ )?(?:prompt|instructions"
        r"|system message|configuration|rules|guidelines)",
        keys=("your", "prompt instructions message configuration guidelines rules"),
    ),
    rule(
        "reveal_your_configuration",
        EXTRACTION,
        0.7,
        r"(?:repeat|print|output|show|reveal|display|tell|give|dump|leak|expose|divulge|disclose"
        r"|share|recite|reproduce|list) (?:me |us )?(?:all |back )?(?:of )?your (?:\w+ ){1,2}?"
        r"(?:instructions|rules|guidelines|directives|prompt|configuration|config|programming"
        r"|system message|preprompt)",
        keys=(
            "repeat print output show reveal display tell give dump leak expose divulge disclose"
            " share recite reproduce list",
            "your",
            "instructions rules guidelines directives prompt configuration config programming"
            " message preprompt",
        ),
    ),
    # Text planted for a model to read: tool results, web pages, documents.
    rule(
        "ai_reading_this",
        OVERRIDE,
        0.6,
        rf"{AI}s? (?:that is |who is |currently |now )?(?:reading|processing|summari[sz]ing"
        r"|parsing|analy[sz]ing|crawling|browsing|scraping|indexing) (?:this|these)"
        r"(?: \w+)? ?[:,-]",
        keys=(
            AI_KEYS,
            "reading processing summarizing summarising parsing analyzing analysing crawling"
            " browsing scraping indexing",
        ),
    ),
    rule(
        "when_summarizing_instead",
        OVERRIDE,
        0.6,
        r"when (?:you (?:are )?)?(?:summari[sz](?:e|es|ing)|answering|responding|replying|asked"
        r"|processing|reading)(?: \w+){0,4},? (?:instead|tell the user|inform the user"
        r"|do not mention|don't mention|never mention|claim that|insist that)",
        keys=(
            "when",
            "summarize summarizes summarizing summarise summarises summarising answering"
            " responding replying asked processing reading",
            "instead tell inform mention claim insist",
        ),
    ),
    rule(
        "comment_to_the_ai",
        OVERRIDE,
        0.5,
        rf"<!--[^>]{{0,200}}?(?:{AI}|you must|ignore|disregard|instead)",
        keys=(),
    ),
    # Fake delimiters and chat-template markup.
    rule(
        "fake_role_tags",
        OVERRIDE,
        0.7,
        r"</(?:user|human|input|document|context|data|query)> ?<(?:system|assistant|admin"
        r"|instructions?|developer)(?=>)",
        keys=("system assistant admin instructions instruction developer",),
    ),
    rule(
        "role_tag",
        OVERRIDE,
        0.4,
        r"<(?:system|admin|developer|instructions)(?=>)",
        keys=("system admin developer instructions",),
    ),
    rule(
        "end_of_input_marker",
        OVERRIDE,
        0.5,
        r"(?:end|begin|start) (?:of )?(?:the )?(?:user input|user message|user query|user prompt"
        r"|document|context|data|system prompt|instructions|untrusted (?:input|content))"
        r" ?(?:-{2,}|={2,}|#{2,}|\*{2,}|\]|>)",
        keys=("end begin start", "input message query prompt document context data instructions"),
    ),
    rule(
        "role_after_delimiter",
        OVERRIDE,
        0.5,
        r"(?:-{3,}|={3,}|#{3,}|\]\]?|>) ?(?:system|admin|developer|new instructions) ?:",
        keys=("system admin developer instructions",),
    ),
    # Payload splitting: an attack built from parts, then run.
    rule(
        "combine_the_parts_and_follow",
        OVERRIDE,
        0.6,
        r"(?:combine|concatenate|join|merge|put together|append|add) (?:the )?(?:\w+ ){0,6}?"
        r"(?:and|then|,) (?:\w+ )?(?:follow|obey|execute|do|run|carry out|act on|perform)"
        r" (?:it|them|the (?:result|resulting|combined|instruction))"
        r"|(?:execute|follow|obey|run|do what) (?:the )?(?:string |instruction )?"
        r"[a-z]\d? ?\+ ?[a-z]\d?(?![a-z])",
        keys=(
            "combine concatenate join merge put append add execute follow obey run do",
            "follow obey execute do run carry act perform",
        ),
    ),
)
