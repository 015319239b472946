"""Create template.yaml's resources in a local AWS endpoint (moto), and resolve its intrinsics.

Only the resource types the stack uses are supported; an unknown type is an
error rather than a silent gap, so the local stack and the template cannot drift.
Serverless functions are not created in moto on purpose: without Docker moto's
event source mappings consume events and run nothing. The event pump
(infra.pump) plays their part.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from infra.template import functions, load_template

LOCAL_ACCOUNT_ID = "123456789012"
LOCAL_REGION = "us-east-1"
LOCAL_STACK_NAME = "soundslike-local"

# Types the pump or the handlers stand in for, or that have no local meaning.
NOT_CREATED_LOCALLY = frozenset(
    {
        "AWS::Serverless::Function",
        "AWS::Serverless::HttpApi",
        # Nothing publishes CloudWatch metrics locally, so an alarm could never fire.
        "AWS::CloudWatch::Alarm",
    }
)


class UnsupportedResourceError(ValueError):
    pass


@dataclass
class LocalResources:
    """Physical names and attributes of the created resources, by logical id."""

    refs: dict[str, str] = field(default_factory=dict)
    attributes: dict[str, dict[str, str]] = field(default_factory=dict)
    function_env: dict[str, dict[str, str]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"refs": self.refs, "attributes": self.attributes, "function_env": self.function_env}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> LocalResources:
        return cls(refs=raw["refs"], attributes=raw["attributes"], function_env=raw["function_env"])


class Resolver:
    """Evaluates Ref, Fn::GetAtt, Fn::Sub, Fn::If, Fn::Join, Fn::Select, Fn::Equals and Fn::Not."""

    def __init__(self, template: dict[str, Any], resources: LocalResources, stack_name: str, region: str,
                 parameters: Mapping[str, str] | None = None) -> None:
        self.template = template
        self.resources = resources
        self.pseudo = {
            "AWS::StackName": stack_name,
            "AWS::AccountId": LOCAL_ACCOUNT_ID,
            "AWS::Region": region,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": None,
        }
        # The template's defaults, with the values given (as at deployment) over them.
        self.parameters = {
            name: str(spec.get("Default", "")) for name, spec in template.get("Parameters", {}).items()
        }
        self.parameters.update(parameters or {})

    def ref(self, name: str) -> str:
        if name in self.pseudo:
            return self.pseudo[name]  # type: ignore[return-value]
        if name in self.parameters:
            return self.parameters[name]
        if name in self.resources.refs:
            return self.resources.refs[name]
        raise KeyError(f"Ref {name}: resource not created yet or unknown")

    def get_att(self, name: str, attribute: str) -> str:
        try:
            return self.resources.attributes[name][attribute]
        except KeyError:
            raise KeyError(f"Fn::GetAtt {name}.{attribute}: not available locally") from None

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self.template["Conditions"][name]))

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, arg), = value.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::GetAtt":
                name, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
                return self.get_att(name, attribute)
            if key == "Fn::Sub":
                return self._sub(arg)
            if key == "Fn::If":
                name, when_true, when_false = arg
                return self.resolve(when_true if self.condition(name) else when_false)
            if key == "Fn::Equals":
                left, right = self.resolve(arg)
                return str(left) == str(right)
            if key == "Fn::Not":
                return not self.resolve(arg[0])
            if key == "Fn::Join":
                sep, items = arg
                return sep.join(str(v) for v in self.resolve(items))
            if key == "Fn::Select":
                index, items = arg
                return self.resolve(items)[int(self.resolve(index))]
            if key == "Condition":
                return self.condition(arg)
        return {k: self.resolve(v) for k, v in value.items()}

    def _sub(self, arg: Any) -> str:
        text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], self.resolve(arg[1]))

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in variables:
                return str(variables[name])
            if "." in name:
                resource, attribute = name.split(".", 1)
                return self.get_att(resource, attribute)
            return self.ref(name)

        return re.sub(r"\$\{([^}!]+)\}", replace, text)


def _physical_name(stack_name: str, logical_id: str, lowercase: bool = False) -> str:
    name = f"{stack_name}-{logical_id}"
    return name.lower() if lowercase else name


def _queue_attributes(props: dict[str, Any]) -> dict[str, str]:
    attributes: dict[str, str] = {}
    for key in ("VisibilityTimeout", "MessageRetentionPeriod", "MaximumMessageSize", "DelaySeconds",
                "ReceiveMessageWaitTimeSeconds"):
        if key in props:
            attributes[key] = str(props[key])
    if "RedrivePolicy" in props:
        attributes["RedrivePolicy"] = json.dumps(props["RedrivePolicy"])
    if props.get("SqsManagedSseEnabled"):
        attributes["SqsManagedSseEnabled"] = "true"
    return attributes


class LocalStackBuilder:
    """Creates the template's resources through boto3 clients pointed at the local endpoint."""

    def __init__(self, template: dict[str, Any], client: Callable[[str], Any],
                 stack_name: str = LOCAL_STACK_NAME, region: str = LOCAL_REGION) -> None:
        self.template = template
        self.client = client
        self.stack_name = stack_name
        self.region = region
        self.resources = LocalResources()
        self.resolver = Resolver(template, self.resources, stack_name, region)

    def build(self) -> LocalResources:
        by_type: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        for logical_id, resource in self.template.get("Resources", {}).items():
            by_type.setdefault(resource["Type"], []).append((logical_id, resource))
        creators: list[tuple[str, Callable[[str, dict[str, Any]], None]]] = [
            ("AWS::SQS::Queue", self._queue),
            ("AWS::SNS::Topic", self._topic),
            ("AWS::SNS::Subscription", self._subscription),
            ("AWS::DynamoDB::Table", self._table),
            ("AWS::SecretsManager::Secret", self._secret),
            ("AWS::SSM::Parameter", self._parameter),
            ("AWS::SQS::QueuePolicy", self._queue_policy),
            ("AWS::S3::Bucket", self._bucket),
        ]
        known = {t for t, _ in creators} | NOT_CREATED_LOCALLY
        unknown = sorted(set(by_type) - known)
        if unknown:
            raise UnsupportedResourceError(f"the local stack cannot create {', '.join(unknown)}")
        for resource_type, create in creators:
            entries = by_type.get(resource_type, [])
            if resource_type == "AWS::SQS::Queue":
                # Dead-letter queues first: the others name them in RedrivePolicy.
                entries.sort(key=lambda entry: "RedrivePolicy" in entry[1].get("Properties", {}))
            for logical_id, resource in entries:
                if "Condition" in resource and not self.resolver.condition(resource["Condition"]):
                    continue
                create(logical_id, self.resolver.resolve(resource.get("Properties", {})))
        for name, function in functions(self.template).items():
            variables = function["Properties"]["Environment"]["Variables"]
            self.resources.function_env[name] = {k: str(v) for k, v in self.resolver.resolve(variables).items()}
        return self.resources

    # -- one method per resource type -------------------------------------------------

    def _queue(self, logical_id: str, props: dict[str, Any]) -> None:
        sqs = self.client("sqs")
        name = props.get("QueueName") or _physical_name(self.stack_name, logical_id)
        url = sqs.create_queue(QueueName=name, Attributes=_queue_attributes(props))["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.resources.refs[logical_id] = url
        self.resources.attributes[logical_id] = {"Arn": arn, "QueueUrl": url, "QueueName": name}

    def _topic(self, logical_id: str, props: dict[str, Any]) -> None:
        name = props.get("TopicName") or _physical_name(self.stack_name, logical_id)
        arn = self.client("sns").create_topic(Name=name)["TopicArn"]
        self.resources.refs[logical_id] = arn
        self.resources.attributes[logical_id] = {"TopicArn": arn, "TopicName": name}

    def _subscription(self, logical_id: str, props: dict[str, Any]) -> None:
        arn = self.client("sns").subscribe(TopicArn=props["TopicArn"], Protocol=props["Protocol"],
                                           Endpoint=props["Endpoint"])["SubscriptionArn"]
        self.resources.refs[logical_id] = arn

    def _table(self, logical_id: str, props: dict[str, Any]) -> None:
        ddb = self.client("dynamodb")
        name = props.get("TableName") or _physical_name(self.stack_name, logical_id)
        table = ddb.create_table(**create_table_params(props, name))["TableDescription"]
        self.resources.refs[logical_id] = name
        self.resources.attributes[logical_id] = {"Arn": table["TableArn"]}
        if "LatestStreamArn" in table:
            self.resources.attributes[logical_id]["StreamArn"] = table["LatestStreamArn"]

    def _secret(self, logical_id: str, props: dict[str, Any]) -> None:
        name = props.get("Name") or _physical_name(self.stack_name, logical_id)
        secret = props.get("SecretString")
        if secret is None:
            generated = props.get("GenerateSecretString", {})
            secret = generated.get("SecretStringTemplate", "{}")
        arn = self.client("secretsmanager").create_secret(Name=name, SecretString=secret)["ARN"]
        self.resources.refs[logical_id] = arn
        self.resources.attributes[logical_id] = {"Id": arn}

    def _parameter(self, logical_id: str, props: dict[str, Any]) -> None:
        # As CloudFormation names it: no leading slash, so IAM ARNs are …:parameter/CFN-…
        name = props.get("Name") or f"CFN-{logical_id}-{self.stack_name}"
        self.client("ssm").put_parameter(Name=name, Value=str(props["Value"]), Type=props.get("Type", "String"),
                                         Overwrite=True)
        self.resources.refs[logical_id] = name
        self.resources.attributes[logical_id] = {"Type": props.get("Type", "String"), "Value": str(props["Value"])}

    def _queue_policy(self, logical_id: str, props: dict[str, Any]) -> None:
        for url in props["Queues"]:
            self.client("sqs").set_queue_attributes(
                QueueUrl=url, Attributes={"Policy": json.dumps(props["PolicyDocument"])}
            )
        self.resources.refs[logical_id] = logical_id

    def _bucket(self, logical_id: str, props: dict[str, Any]) -> None:
        s3 = self.client("s3")
        name = props.get("BucketName") or _physical_name(self.stack_name, logical_id, lowercase=True)
        params: dict[str, Any] = {"Bucket": name}
        if self.region != "us-east-1":
            params["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        s3.create_bucket(**params)
        if "PublicAccessBlockConfiguration" in props:
            s3.put_public_access_block(Bucket=name,
                                       PublicAccessBlockConfiguration=props["PublicAccessBlockConfiguration"])
        if "BucketEncryption" in props:
            s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": [
                {"ApplyServerSideEncryptionByDefault": rule["ServerSideEncryptionByDefault"]}
                for rule in props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
            ]})
        if "LifecycleConfiguration" in props:
            s3.put_bucket_lifecycle_configuration(
                Bucket=name, LifecycleConfiguration={"Rules": [_lifecycle_rule(r) for r in
                                                               props["LifecycleConfiguration"]["Rules"]]}
            )
        notifications = props.get("NotificationConfiguration", {})
        if notifications.get("QueueConfigurations"):
            s3.put_bucket_notification_configuration(
                Bucket=name,
                NotificationConfiguration={"QueueConfigurations": [
                    _queue_notification(c) for c in notifications["QueueConfigurations"]
                ]},
            )
        arn = f"arn:aws:s3:::{name}"
        self.resources.refs[logical_id] = name
        self.resources.attributes[logical_id] = {"Arn": arn, "DomainName": f"{name}.s3.amazonaws.com"}


def create_table_params(props: dict[str, Any], name: str) -> dict[str, Any]:
    """CloudFormation's AWS::DynamoDB::Table properties as CreateTable arguments."""
    params: dict[str, Any] = {
        "TableName": name,
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
        "BillingMode": props.get("BillingMode", "PROVISIONED"),
    }
    if "StreamSpecification" in props:
        params["StreamSpecification"] = {"StreamEnabled": True, **props["StreamSpecification"]}
    if "GlobalSecondaryIndexes" in props:
        params["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
    return params


@cache
def template_table_params(name: str, logical_id: str = "TracksTable") -> dict[str, Any]:
    """CreateTable arguments for a table of template.yaml under another name.

    Tests create the Tracks table in moto with these, so their table is the template's.
    """
    return create_table_params(load_template()["Resources"][logical_id]["Properties"], name)


def _lifecycle_rule(rule: dict[str, Any]) -> dict[str, Any]:
    """CloudFormation's lifecycle rule shape to the S3 API's."""
    converted: dict[str, Any] = {"ID": rule.get("Id", "rule"), "Status": rule["Status"],
                                 "Filter": {"Prefix": rule.get("Prefix", "")}}
    if "ExpirationInDays" in rule:
        converted["Expiration"] = {"Days": int(rule["ExpirationInDays"])}
    return converted


def _queue_notification(config: dict[str, Any]) -> dict[str, Any]:
    """CloudFormation's QueueConfiguration shape to the S3 API's."""
    converted: dict[str, Any] = {"QueueArn": config["Queue"], "Events": [config["Event"]]}
    rules = config.get("Filter", {}).get("S3Key", {}).get("Rules", [])
    if rules:
        converted["Filter"] = {"Key": {"FilterRules": [{"Name": r["Name"], "Value": r["Value"]} for r in rules]}}
    return converted
